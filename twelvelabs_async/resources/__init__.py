"""Task resources: one class per API family, all built on :class:`TaskResource`."""

from ._base import TaskResource
from .analyze import Analyze, AnalyzeTasks
from .embed import Embed, EmbedV1, EmbedV2
from .embed_v1 import EmbedV1Tasks
from .embed_v2 import EmbedV2Tasks

__all__ = [
    "Analyze",
    "AnalyzeTasks",
    "Embed",
    "EmbedV1",
    "EmbedV1Tasks",
    "EmbedV2",
    "EmbedV2Tasks",
    "TaskResource",
]
