"""Embed API v1 video embedding tasks: ``client.embed.v1.tasks`` (alias ``client.embed.tasks``)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Any, ClassVar

import anyio

from .._config import Timeout
from .._decode import decode
from .._transport import FormValue, RequestOptions
from .._types import TaskKind
from ..types.embed_v1 import EmbedV1Task, EmbedV1TaskCreated, EmbedV1TaskStatus
from ._base import build_options
from ._embed_base import EmbedTaskResource

__all__ = ["EmbedV1Tasks"]


class EmbedV1Tasks(EmbedTaskResource[EmbedV1Task, EmbedV1TaskStatus]):
    """Create, list, check and wait for v1 video embedding tasks (final: ``ready``, ``failed``).

    Polling uses the light ``/status`` endpoint; the embeddings are fetched once, at the end.
    """

    kind: ClassVar[TaskKind] = "embed_v1"
    collection: ClassVar[str] = "/embed/tasks"
    task_type = EmbedV1Task

    async def status(
        self,
        task_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> EmbedV1TaskStatus:
        """The task's status and metadata, without embeddings."""
        return await self.check(task_id, build_options(timeout, max_retries, request_options))

    async def retrieve(
        self,
        task_id: str,
        embedding_option: Sequence[str] | None = None,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> EmbedV1Task:
        """The task with its embedding segments (call once the status is ``ready``);
        ``embedding_option`` keeps only the given kinds (``visual``, ``audio``, ...)."""
        if isinstance(embedding_option, str):
            embedding_option = [embedding_option]
        params = [("embedding_option", option) for option in embedding_option or ()]
        task: EmbedV1Task = await self._get(
            EmbedV1Task,
            self._task_path(task_id),
            build_options(timeout, max_retries, request_options),
            params=params or None,
        )
        return task

    async def wait_for_done(
        self,
        task_id: str,
        *,
        sleep_interval: float = 5.0,
        callback: Callable[[EmbedV1TaskStatus], Awaitable[None]] | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> EmbedV1TaskStatus:
        """The official SDK's helper, for code moving over unchanged: check the status every
        ``sleep_interval`` seconds, await ``callback`` with each status (the first and the
        final one included) and return the final status. Errors are raised, never swallowed.
        Prefer :meth:`wait`, which has a deadline and a growing interval."""
        if sleep_interval <= 0:
            raise ValueError("sleep_interval must be positive")
        while True:
            status = await self.status(task_id, request_options=request_options)
            if callback is not None:
                await callback(status)
            if status.is_final:
                return status
            await anyio.sleep(sleep_interval)

    async def check(self, task_id: str, options: RequestOptions | None = None) -> EmbedV1TaskStatus:
        """One status check through ``GET /embed/tasks/{task_id}/status``."""
        checked: EmbedV1TaskStatus = await self._get(
            EmbedV1TaskStatus, self._task_path(task_id, "/status"), options
        )
        return checked

    async def complete(
        self, checked: EmbedV1TaskStatus, task_id: str, options: RequestOptions | None
    ) -> EmbedV1Task:
        """Fetch the full record (with segments) of a task whose status is final."""
        task: EmbedV1Task = await self._get(EmbedV1Task, self._task_path(task_id), options)
        return task

    async def create(
        self,
        *,
        model_name: str,
        video_file: bytes | os.PathLike[str] | IO[bytes] | None = None,
        video_url: str | None = None,
        video_start_offset_sec: float | None = None,
        video_end_offset_sec: float | None = None,
        video_clip_length: float | None = None,
        video_embedding_scope: Sequence[str] | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> EmbedV1TaskCreated:
        """Start a video embedding task from an uploaded file (bytes, a path or a binary file
        object) or a URL, sent as multipart form data. A path is re-read on every retry."""
        if video_file is None and video_url is None:
            raise ValueError("create() needs video_file or video_url")
        fields: list[tuple[str, FormValue]] = [("model_name", model_name)]
        if video_url is not None:
            fields.append(("video_url", video_url))
        if video_file is not None:
            fields.append(("video_file", video_file))
        for name, number in (
            ("video_start_offset_sec", video_start_offset_sec),
            ("video_end_offset_sec", video_end_offset_sec),
            ("video_clip_length", video_clip_length),
        ):
            if number is not None:
                fields.append((name, repr(float(number))))
        fields.extend(("video_embedding_scope", scope) for scope in video_embedding_scope or ())
        response = await self._transport.request(
            "POST",
            self.collection,
            form=fields,
            options=build_options(timeout, max_retries, request_options),
        )
        return decode(EmbedV1TaskCreated, response)
