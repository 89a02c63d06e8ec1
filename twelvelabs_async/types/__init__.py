"""Wire structs (``msgspec.Struct``) for every task request and response.

Field names are the Python spellings of the wire names (``_id`` is ``id``, ``float`` is
``float_``, ``prompt_v2`` is ``prompt_v_2``). Unknown fields are ignored, and enum-like fields
are plain strings so that values the API adds later never break decoding. Embedding vectors
are :class:`Float32Vector` (4-byte floats; see ``_vector.py``).
"""

from ._vector import Float32Vector
from .analyze import (
    AnalyzeImageInput,
    AnalyzeTask,
    AnalyzeTaskCanceled,
    AnalyzeTaskCreated,
    AnalyzeTaskError,
    AnalyzeTaskRequest,
    AnalyzeTaskRequestParams,
    AnalyzeTaskResult,
    AnalyzeTaskUsage,
    AnalyzeTaskWebhookInfo,
    AnalyzeVideoSource,
    PromptV2,
    VideoContext,
)
from .common import PageInfo, TaskPage
from .embed_v1 import (
    EmbedV1Task,
    EmbedV1TaskCreated,
    EmbedV1TaskStatus,
    VideoEmbedding,
    VideoEmbeddingMetadata,
    VideoSegment,
)
from .embed_v2 import (
    AsyncAudioInput,
    AsyncDocumentInput,
    AsyncImageInput,
    AsyncVideoInput,
    EmbeddingData,
    EmbeddingTask,
    EmbeddingTaskCreated,
    EmbeddingTaskCreatedMetadata,
    EmbeddingTaskError,
    EmbeddingTaskMetadata,
    EmbeddingUsage,
    EmbeddingV2TaskRequest,
    MediaEmbeddingTask,
    MediaSource,
    TimeBasedMetadata,
)

__all__ = [
    "AnalyzeImageInput",
    "AnalyzeTask",
    "AnalyzeTaskCanceled",
    "AnalyzeTaskCreated",
    "AnalyzeTaskError",
    "AnalyzeTaskRequest",
    "AnalyzeTaskRequestParams",
    "AnalyzeTaskResult",
    "AnalyzeTaskUsage",
    "AnalyzeTaskWebhookInfo",
    "AnalyzeVideoSource",
    "AsyncAudioInput",
    "AsyncDocumentInput",
    "AsyncImageInput",
    "AsyncVideoInput",
    "EmbedV1Task",
    "EmbedV1TaskCreated",
    "EmbedV1TaskStatus",
    "EmbeddingData",
    "EmbeddingTask",
    "EmbeddingTaskCreated",
    "EmbeddingTaskCreatedMetadata",
    "EmbeddingTaskError",
    "EmbeddingTaskMetadata",
    "EmbeddingUsage",
    "EmbeddingV2TaskRequest",
    "Float32Vector",
    "MediaEmbeddingTask",
    "MediaSource",
    "PageInfo",
    "PromptV2",
    "TaskPage",
    "TimeBasedMetadata",
    "VideoContext",
    "VideoEmbedding",
    "VideoEmbeddingMetadata",
    "VideoSegment",
]
