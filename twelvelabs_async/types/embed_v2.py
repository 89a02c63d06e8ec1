"""Wire structs of the Embed API v2 asynchronous tasks (``/embed-v2/tasks``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from .._types import EMBED_FINAL_STATUSES
from ._vector import OptionalVectorField as _OptionalVector
from ._vector import VectorField as _Vector
from ._vector import (
    as_float32_vector,
    as_optional_float32_vector,
    register_vector_layout,
    stack_vectors,
)
from .common import Wire as _Wire

if TYPE_CHECKING:
    import numpy

__all__ = [
    "AsyncAudioInput",
    "AsyncDocumentInput",
    "AsyncImageInput",
    "AsyncVideoInput",
    "EmbeddingData",
    "EmbeddingTask",
    "EmbeddingTaskCreated",
    "EmbeddingTaskCreatedMetadata",
    "EmbeddingTaskError",
    "EmbeddingTaskMetadata",
    "EmbeddingUsage",
    "EmbeddingV2TaskRequest",
    "MediaEmbeddingTask",
    "MediaSource",
    "TimeBasedMetadata",
]


# --- requests -------------------------------------------------------------------------------


class MediaSource(_Wire):
    """Where the media comes from: exactly one of ``url``, ``base64_string`` or ``asset_id``."""

    url: str | None = None
    base64_string: str | None = None
    asset_id: str | None = None


class TimeBasedMetadata(_Wire):
    """Text folded into the fused embedding of the segments overlapping ``start``..``end``."""

    start: float
    end: float
    text: str


class AsyncAudioInput(_Wire):
    """Audio to embed asynchronously. ``segmentation`` takes the Marengo 3.0 shape
    (``{"strategy": "fixed", "fixed": {...}}``) or the 3.5 shape (``{"temporal": {...}}``)."""

    media_source: MediaSource
    start_sec: float | None = None
    end_sec: float | None = None
    segmentation: dict[str, Any] | None = None
    embedding_option: list[str] | None = None
    embedding_scope: list[str] | None = None
    embedding_type: list[str] | None = None
    time_based_metadata: list[TimeBasedMetadata] | None = None


class AsyncVideoInput(AsyncAudioInput):
    """Video to embed asynchronously (same fields as audio; options visual/audio/transcription)."""


class AsyncDocumentInput(_Wire):
    """A PDF, .txt or .md document (Marengo 3.5)."""

    media_source: MediaSource
    segmentation: dict[str, Any] | None = None
    embedding_option: list[str] | None = None
    embedding_scope: list[str] | None = None
    embedding_type: list[str] | None = None


class AsyncImageInput(_Wire):
    """An image (Marengo 3.5)."""

    media_source: MediaSource
    embedding_option: list[str] | None = None
    embedding_scope: list[str] | None = None
    embedding_type: list[str] | None = None


class EmbeddingV2TaskRequest(_Wire):
    """Body of ``POST /embed-v2/tasks``."""

    input_type: str
    model_name: str
    embedding_uncertainty: bool | None = None
    embedding_dimension: int | None = None
    audio: AsyncAudioInput | dict[str, Any] | None = None
    video: AsyncVideoInput | dict[str, Any] | None = None
    document: AsyncDocumentInput | dict[str, Any] | None = None
    image: AsyncImageInput | dict[str, Any] | None = None


# --- responses ------------------------------------------------------------------------------


class EmbeddingData(_Wire):
    """One embedding vector and what it covers (a clip, a page, a chunk or the whole asset).

    ``embedding`` (and ``embedding_uncertainty``) are :class:`Float32Vector`: float32 values
    with ``len()``, indexing, iteration and the buffer protocol (format ``'f'``).
    """

    embedding: _Vector
    embedding_uncertainty: _OptionalVector = None
    embedding_option: str | None = None
    embedding_scope: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    start_page_number: int | None = None
    end_page_number: int | None = None
    quadrant: str | None = None
    chunk_index: int | None = None

    def __post_init__(self) -> None:
        self.embedding = as_float32_vector(self.embedding, "embedding")
        self.embedding_uncertainty = as_optional_float32_vector(
            self.embedding_uncertainty, "embedding_uncertainty"
        )


class EmbeddingUsage(_Wire):
    """Token usage (Marengo 3.5): input tokens per content type and whether input was cut."""

    input_tokens: dict[str, int] = {}
    truncated: bool = False
    truncation_reason: str | None = None


class EmbeddingTaskMetadata(_Wire):
    """Media metadata of a task. One struct covers every ``input_type`` (video, audio,
    document, image, and any the API adds later), so an unknown type never fails decoding."""

    input_type: str | None = None
    input_url: str | None = None
    input_filename: str | None = None
    clip_length: float | None = None
    embedding_scopes: list[str] | None = None
    embedding_options: list[str] | None = None
    duration: float | None = None
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None
    embedding_dimension: int | None = None


class EmbeddingTaskError(_Wire):
    """Why a task failed (free text: show it, do not parse it)."""

    message: str | None = None
    code: str | None = None


class EmbeddingTask(_Wire):
    """An Embed v2 task as returned by ``GET /embed-v2/tasks/{task_id}``.

    ``data`` holds the embeddings once ``status`` is ``"ready"``; ``error`` says why a
    ``"failed"`` task failed.
    """

    FINAL_STATUSES: ClassVar[frozenset[str]] = EMBED_FINAL_STATUSES

    id: str = msgspec.field(name="_id")
    status: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    data: list[EmbeddingData] | None = None
    usage: EmbeddingUsage | None = None
    metadata: EmbeddingTaskMetadata | None = None
    error: EmbeddingTaskError | None = None

    @property
    def is_final(self) -> bool:
        """``True`` once the task is ``ready`` or ``failed``."""
        return self.status in EMBED_FINAL_STATUSES

    @property
    def error_message(self) -> str | None:
        """The task's error message, if any."""
        return self.error.message if self.error is not None else None

    def embeddings_array(self, option: str | None = None) -> numpy.ndarray[Any, Any]:
        """The vectors of ``data`` as one 2-D ``numpy.float32`` array (one row per item).

        ``option`` keeps only the items of that ``embedding_option`` (``"visual"``,
        ``"audio"``, ...). Needs numpy (an optional dependency: ``ImportError`` without it);
        ``ValueError`` if the kept vectors differ in length. No data gives shape ``(0, 0)``.
        """
        items = self.data or ()
        return stack_vectors(
            [d.embedding for d in items if option is None or d.embedding_option == option]
        )


class EmbeddingTaskCreatedMetadata(_Wire):
    """Metadata of a newly created task (Marengo 3.5 reports the embedding dimension)."""

    embedding_dimension: int | None = None


class EmbeddingTaskCreated(_Wire):
    """Answer of ``POST /embed-v2/tasks``: the new task's id, status ``processing``."""

    id: str = msgspec.field(name="_id")
    status: str
    data: list[EmbeddingData] | None = None
    metadata: EmbeddingTaskCreatedMetadata | None = None


class _MetadataHolder(_Wire):
    metadata: dict[str, Any] | None = None


class MediaEmbeddingTask(_Wire):
    """An item of ``GET /embed-v2/tasks`` and ``GET /embed/tasks``: a summary without the
    embeddings (retrieve the task for those). Every field may be missing."""

    id: str | None = msgspec.field(default=None, name="_id")
    model_name: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    video_embedding: _MetadataHolder | None = None
    audio_embedding: _MetadataHolder | None = None
    document_embedding: _MetadataHolder | None = None
    image_embedding: _MetadataHolder | None = None

    @property
    def is_final(self) -> bool:
        """``True`` if the summary says ``ready`` or ``failed``."""
        return self.status in EMBED_FINAL_STATUSES


# Where the accelerator finds these tasks' vectors in a body (see _vector.decode_body).
register_vector_layout(EmbeddingTask, 2)
register_vector_layout(EmbeddingTaskCreated, 2)
