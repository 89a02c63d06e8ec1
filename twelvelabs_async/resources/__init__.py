"""Task resources: one class per API family, all built on :class:`TaskResource`."""

from ._base import TaskResource
from .analyze import Analyze, AnalyzeTasks
from .assets import Assets
from .batches import AnalyzeBatches
from .embed import Embed, EmbedV1, EmbedV2
from .embed_v1 import EmbedV1Tasks
from .embed_v2 import EmbedV2Tasks
from .multipart import MultipartUpload

__all__ = [
    "Analyze",
    "AnalyzeBatches",
    "AnalyzeTasks",
    "Assets",
    "Embed",
    "EmbedV1",
    "EmbedV1Tasks",
    "EmbedV2",
    "EmbedV2Tasks",
    "MultipartUpload",
    "TaskResource",
]
