"""Asynchronous analysis tasks: ``client.analyze.tasks`` (alias ``client.analyze_async.tasks``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._config import Timeout
from .._decode import decode
from .._paginator import AsyncPaginator
from .._transport import Transport
from .._types import ANALYZE_FINAL_STATUSES, TaskKind
from ..types.analyze import (
    AnalyzeImageInput,
    AnalyzeTask,
    AnalyzeTaskCanceled,
    AnalyzeTaskCreated,
    AnalyzeTaskRequest,
    PromptV2,
    VideoContext,
)
from ._base import TaskResource, build_options
from .batches import AnalyzeBatches

__all__ = ["Analyze", "AnalyzeTasks"]


class AnalyzeTasks(TaskResource[AnalyzeTask, AnalyzeTask, AnalyzeTask]):
    """Create, list, retrieve, cancel, delete and wait for analysis tasks
    (final: ``ready``, ``failed``, ``canceled``)."""

    kind: ClassVar[TaskKind] = "analyze"
    collection: ClassVar[str] = "/analyze/tasks"
    final_statuses: ClassVar[frozenset[str]] = ANALYZE_FINAL_STATUSES
    known_statuses: ClassVar[frozenset[str]] = ANALYZE_FINAL_STATUSES | {
        "queued",
        "pending",
        "processing",
    }
    sweep_statuses: ClassVar[tuple[str, ...]] = ("queued", "pending", "processing")
    sweep_time_window: ClassVar[bool] = False
    task_type = AnalyzeTask
    item_type = AnalyzeTask

    def list(
        self,
        *,
        status: str | None = None,
        video_url: str | None = None,
        asset_id: str | None = None,
        analysis_mode: str | None = None,
        video_id: str | None = None,
        page: int | None = None,
        page_limit: int | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AsyncPaginator[AnalyzeTask]:
        """Analysis tasks newest first, optionally filtered (``video_id``: deprecated by the
        API, still honoured). List items truncate prompts; retrieve a task for its full
        record."""
        filters = {
            "status": status,
            "video_url": video_url,
            "asset_id": asset_id,
            "analysis_mode": analysis_mode,
            "video_id": video_id,
        }
        options = build_options(timeout, max_retries, request_options)
        return self._paginate(filters, page, page_limit, options)

    async def create(
        self,
        *,
        video: VideoContext | dict[str, Any] | None = None,
        image: Sequence[AnalyzeImageInput | dict[str, Any]] | None = None,
        prompt: str | None = None,
        prompt_v_2: PromptV2 | dict[str, Any] | None = None,
        model_name: str | None = None,
        custom_id: str | None = None,
        analysis_mode: str | None = None,
        temperature: float | None = None,
        max_tokens: int | str | None = None,
        response_format: dict[str, Any] | None = None,
        min_segment_duration: float | None = None,
        max_segment_duration: float | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AnalyzeTaskCreated:
        """Start an analysis task.

        Every call sends an ``Idempotency-Key`` header (yours, or a fresh random one) that stays
        the same on each retry of the call, so retries never create a second task.
        """
        body = AnalyzeTaskRequest(
            model_name=model_name,
            custom_id=custom_id,
            video=video,
            image=list(image) if image is not None else None,
            prompt=prompt,
            prompt_v_2=prompt_v_2,
            analysis_mode=analysis_mode,
            temperature=temperature,
            max_tokens=max_tokens,
            response_format=response_format,
            min_segment_duration=min_segment_duration,
            max_segment_duration=max_segment_duration,
            start_time=start_time,
            end_time=end_time,
        )
        response = await self._transport.request(
            "POST",
            self.collection,
            json=body,
            options=build_options(timeout, max_retries, request_options),
            idempotency_key=idempotency_key or Transport.new_idempotency_key(),
        )
        return decode(AnalyzeTaskCreated, response)

    async def cancel(
        self,
        task_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AnalyzeTaskCanceled:
        """Cancel a queued, pending or processing task (irreversible). Cancelling twice is
        harmless, so this call is retried like a GET.

        Raises:
            ConflictError: the task is already ready or failed.
        """
        response = await self._transport.request(
            "POST",
            self._task_path(task_id, "/cancel"),
            options=build_options(timeout, max_retries, request_options),
            idempotency_key=Transport.new_idempotency_key(),
        )
        return decode(AnalyzeTaskCanceled, response)

    async def delete(
        self,
        task_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete a task that is not being processed.

        Raises:
            ConflictError: the task is still being processed.
            NotFoundError: no such task.
        """
        await self._transport.request(
            "DELETE",
            self._task_path(task_id),
            options=build_options(timeout, max_retries, request_options),
        )


class Analyze:
    """``client.analyze``: the analysis API namespace (``.tasks``, ``.batches``)."""

    def __init__(self, transport: Transport) -> None:
        self.tasks = AnalyzeTasks(transport)
        self.batches = AnalyzeBatches(transport)

    def __repr__(self) -> str:
        return "<Analyze tasks batches>"
