"""Wire structs of the Embed API v1 video embedding tasks (``/embed/tasks``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from .._types import EMBED_FINAL_STATUSES
from ._vector import Float32Vector, as_float32_vector, register_vector_layout, stack_vectors
from ._vector import VectorField as _Vector
from .common import Wire as _Wire

if TYPE_CHECKING:
    import numpy

__all__ = [
    "EmbedV1Task",
    "EmbedV1TaskCreated",
    "EmbedV1TaskStatus",
    "VideoEmbedding",
    "VideoEmbeddingMetadata",
    "VideoSegment",
]


class VideoEmbeddingMetadata(_Wire):
    """What was embedded: source, clip length, scopes, options and duration."""

    input_url: str | None = None
    input_filename: str | None = None
    video_clip_length: float | None = None
    video_embedding_scope: list[str] | None = None
    video_embedding_option: list[str] | None = None
    duration: float | None = None


class VideoSegment(_Wire):
    """One embedding of a clip (or of the whole video). The vector's wire name is ``float``;
    ``float_`` is a :class:`Float32Vector` (float32 values, buffer format ``'f'``)."""

    float_: _Vector = msgspec.field(default_factory=Float32Vector, name="float")
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None
    embedding_option: str | None = None
    embedding_scope: str | None = None

    def __post_init__(self) -> None:
        self.float_ = as_float32_vector(self.float_, "float")


class VideoEmbedding(_Wire):
    """Metadata and, once ready, the segments of a v1 task."""

    metadata: VideoEmbeddingMetadata | None = None
    segments: list[VideoSegment] | None = None


class _V1Base(_Wire):
    FINAL_STATUSES: ClassVar[frozenset[str]] = EMBED_FINAL_STATUSES

    id: str | None = msgspec.field(default=None, name="_id")
    model_name: str | None = None
    status: str | None = None
    video_embedding: VideoEmbedding | None = None

    @property
    def is_final(self) -> bool:
        """``True`` once the task is ``ready`` or ``failed``."""
        return self.status in EMBED_FINAL_STATUSES

    @property
    def error_message(self) -> str | None:
        """v1 tasks carry no error message."""
        return None


class EmbedV1TaskStatus(_V1Base):
    """Answer of ``GET /embed/tasks/{task_id}/status`` (no embeddings, no ``created_at``)."""


class EmbedV1Task(_V1Base):
    """Answer of ``GET /embed/tasks/{task_id}``: the task with its segments once ready."""

    created_at: datetime | None = None
    updated_at: datetime | None = None

    def embeddings_array(self, option: str | None = None) -> numpy.ndarray[Any, Any]:
        """The segments' vectors as one 2-D ``numpy.float32`` array (one row per segment).

        ``option`` keeps only the segments of that ``embedding_option``. Needs numpy
        (``ImportError`` without it); ``ValueError`` if the kept vectors differ in length.
        """
        video = self.video_embedding
        segments = (video.segments if video is not None else None) or ()
        return stack_vectors(
            [s.float_ for s in segments if option is None or s.embedding_option == option]
        )


class EmbedV1TaskCreated(_Wire):
    """Answer of ``POST /embed/tasks``."""

    id: str | None = msgspec.field(default=None, name="_id")


# Where the accelerator finds these tasks' vectors in a body (see _vector.decode_body).
register_vector_layout(EmbedV1Task, 1)
