"""Embed API v2 asynchronous tasks: ``client.embed.v2.tasks``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .._config import Timeout
from .._decode import decode
from .._types import TaskKind
from ..types.embed_v2 import (
    AsyncAudioInput,
    AsyncDocumentInput,
    AsyncImageInput,
    AsyncVideoInput,
    EmbeddingTask,
    EmbeddingTaskCreated,
    EmbeddingV2TaskRequest,
)
from ._base import build_options
from ._embed_base import EmbedTaskResource

__all__ = ["EmbedV2Tasks"]


class EmbedV2Tasks(EmbedTaskResource[EmbeddingTask, EmbeddingTask]):
    """Create, list, retrieve and wait for Embed v2 tasks (final: ``ready``, ``failed``)."""

    kind: ClassVar[TaskKind] = "embed_v2"
    collection: ClassVar[str] = "/embed-v2/tasks"
    task_type = EmbeddingTask

    async def create(
        self,
        *,
        input_type: str,
        model_name: str,
        audio: AsyncAudioInput | dict[str, Any] | None = None,
        video: AsyncVideoInput | dict[str, Any] | None = None,
        document: AsyncDocumentInput | dict[str, Any] | None = None,
        image: AsyncImageInput | dict[str, Any] | None = None,
        embedding_uncertainty: bool | None = None,
        embedding_dimension: int | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> EmbeddingTaskCreated:
        """Start an embedding task for long audio, video, a document or an image.

        Only retried on 429 or when the request surely never reached the API, so a retry can
        never create a second task.
        """
        body = EmbeddingV2TaskRequest(
            input_type=input_type,
            model_name=model_name,
            audio=audio,
            video=video,
            document=document,
            image=image,
            embedding_uncertainty=embedding_uncertainty,
            embedding_dimension=embedding_dimension,
        )
        response = await self._transport.request(
            "POST",
            self.collection,
            json=body,
            options=build_options(timeout, max_retries, request_options),
        )
        return decode(EmbeddingTaskCreated, response)
