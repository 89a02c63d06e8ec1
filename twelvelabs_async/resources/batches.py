"""Analysis batches: ``client.analyze.batches`` (alias ``client.analyze_async.batches``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from .._config import Timeout
from .._decode import decode, decoder_for
from .._exceptions import ResponseDecodeError
from .._paginator import AsyncPaginator
from .._transport import Transport
from .._types import WatchKind
from ..types.batches import (
    BATCH_FINAL_STATUSES,
    AnalyzeBatch,
    AnalyzeBatchCreated,
    BatchResultItem,
)
from ._base import TaskResource, build_options

__all__ = ["AnalyzeBatches"]

DEFAULT_BATCH_MODEL = "pegasus1.5"
"""The only model batches accept."""


class AnalyzeBatches(TaskResource[AnalyzeBatch, AnalyzeBatch, AnalyzeBatch]):
    """Create, list, retrieve, cancel, delete and wait for analysis batches, and stream their
    results (final: ``completed``, ``canceled``, ``expired``; ``completed`` means every item
    finished, not that every item succeeded: read the counts)."""

    kind: ClassVar[WatchKind] = "analyze_batch"
    collection: ClassVar[str] = "/analyze/batches"
    final_statuses: ClassVar[frozenset[str]] = BATCH_FINAL_STATUSES
    known_statuses: ClassVar[frozenset[str]] = BATCH_FINAL_STATUSES | {
        "pending",
        "processing",
        "canceling",
    }
    sweep_statuses: ClassVar[tuple[str, ...]] = ("pending", "processing", "canceling")
    sweep_time_window: ClassVar[bool] = False
    success_status: ClassVar[str] = "completed"
    task_type = AnalyzeBatch
    item_type = AnalyzeBatch

    async def create(
        self,
        *,
        requests: Sequence[Mapping[str, Any]],
        analysis_mode: str,
        model_name: str = DEFAULT_BATCH_MODEL,
        defaults: Mapping[str, Any] | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AnalyzeBatchCreated:
        """Submit up to 1,000 analysis requests as one batch.

        Each request is ``{"video": {"type": "asset_id", "asset_id": ...}, "custom_id": ...}``
        plus any per-item override of ``defaults`` (``prompt``, ``response_format``,
        ``temperature``...). The answer lists each item's ``task_id`` and ``custom_id`` in
        request order. The API documents no idempotency for this call, so it is retried only
        when nothing was sent or on a 429 (a 503/504, documented as "the batch was not
        created", is raised: resubmitting is then safe).

        Raises:
            BadRequestError: malformed requests (duplicate ``custom_id``, no prompt...).
            NotFoundError: a referenced asset does not exist.
            ConflictError: a referenced asset is not ``ready`` yet.
            RateLimitError: the rate limit, or already five active batches (see its message).
        """
        body: dict[str, Any] = {
            "model_name": model_name,
            "analysis_mode": analysis_mode,
            "requests": [dict(item) for item in requests],
        }
        if defaults is not None:
            body["defaults"] = dict(defaults)
        response = await self._transport.request(
            "POST",
            self.collection,
            json=body,
            options=build_options(timeout, max_retries, request_options),
        )
        return decode(AnalyzeBatchCreated, response)

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        analysis_mode: str | Sequence[str] | None = None,
        page: int | None = None,
        page_limit: int | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AsyncPaginator[AnalyzeBatch]:
        """Batches newest first, optionally of some statuses or analysis modes."""
        filters = {"status": status, "analysis_mode": analysis_mode}
        options = build_options(timeout, max_retries, request_options)
        return self._paginate(filters, page, page_limit, options)

    async def cancel(
        self,
        batch_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AnalyzeBatch:
        """Ask to cancel a batch: queued items are canceled, processing ones finish. The
        answer is the batch as at the request (typically ``canceling``); :meth:`wait` for
        ``canceled``. Cancelling twice is harmless, so this call is retried like a GET.

        Raises:
            ConflictError: the batch is already final.
        """
        response = await self._transport.request(
            "POST",
            self._task_path(batch_id, "/cancel"),
            options=build_options(timeout, max_retries, request_options),
            idempotency_key=Transport.new_idempotency_key(),
        )
        return decode(AnalyzeBatch, response)

    async def delete(
        self,
        batch_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete a final batch and all its tasks.

        Raises:
            ConflictError: the batch is not final yet (cancel it and wait first).
            NotFoundError: no such batch.
        """
        await self._transport.request(
            "DELETE",
            self._task_path(batch_id),
            options=build_options(timeout, max_retries, request_options),
        )

    async def results(
        self,
        batch_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
    ) -> AsyncIterator[BatchResultItem]:
        """Each result line of a batch as it streams in (``async for``, no ``await``).

        Readable while the batch is still running (unfinished items come as ``queued`` or
        ``processing``). Only one line is held in memory at a time. Key the items by
        ``custom_id`` (or ``task_id``), never by position. A line that cannot be parsed raises
        :class:`ResponseDecodeError` rather than being skipped.
        """
        decoder = decoder_for(BatchResultItem)
        async with self._transport.stream(
            "GET",
            self._task_path(batch_id, "/results"),
            options=build_options(timeout, max_retries),
        ) as body:
            async for line in body.lines():
                try:
                    item = decoder.decode(line)
                except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as exc:
                    raise ResponseDecodeError(
                        f"A result line does not fit BatchResultItem: {exc}",
                        status_code=200,
                        method=body.method,
                        path=body.path,
                        body_excerpt=line[:200].decode("utf-8", "replace"),
                    ) from None
                yield item
