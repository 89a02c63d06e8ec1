"""``BulkJob``: items in, one settled result per item out, durable across crashes.

Items are read from the iterable as slots free up (at most ``concurrency`` items are between
"read" and "result taken"), so memory does not grow with the manifest. For each item:

1. its intent (kind, parameters, wall-clock time) is committed to the state file;
2. the create is sent (analysis creates with an ``Idempotency-Key`` derived from the job and
   the ``custom_id``); the task id is recorded as soon as the answer arrives;
3. the task is watched by one poller; its outcome becomes the item's result;
4. the result is marked settled once the caller has taken it (asked for the next one, or left
   the block without an error), so a crash in between hands it over again, never loses it.

A create that failed in a way that may have reached the API (a dropped connection, a timeout,
a 5xx, an unreadable answer) is reconciled instead of re-sent: an analysis create is sent
again with the same key; an embed create is looked for among the kind's tasks created since
the intent, by its input. What cannot be matched settles as ``unconfirmed`` and is never
created a second time. On restart, items left ``sending`` by a crash are reconciled first,
before any create is sent; those proven absent from the API are created normally.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    InvalidFileError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    UploadError,
)
from .._poller import Outcome
from .._ratelimit import RequestGate
from .._types import TaskKind
from ..resources._base import DEFAULT_TASK_TIMEOUT
from ._backend import Backend, HttpBackend
from ._items import (
    REJECTED,
    UNCONFIRMED,
    BulkItem,
    BulkResult,
    idempotency_key,
    input_key,
    listed_keys,
    local_path,
    with_asset,
)
from ._state import CREATED, SENDING, SETTLED, JobState, Row

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._client import AsyncTwelveLabs

__all__ = ["BulkJob", "BulkStats"]

logger = logging.getLogger("twelvelabs_async")

DEFAULT_CONCURRENCY = 64
DEFAULT_RECONCILE_DELAY = 30.0
"""Seconds after an intent before a listing may prove that its create never reached the API
(a create still in flight when the process died has had time to land by then)."""
DEFAULT_RECONCILE_MARGIN = 120.0
"""Seconds listed before the intent time (and after now): clocks differ between us and the
API, and ``created_at`` filters may be truncated to the second."""
_CHUNK = 256
_UPLOADS_AT_ONCE = 2
"""Local files uploaded at once (each already sends several parts in parallel)."""
"""Items looked up in the state file per query."""
_RATE_LIMIT_RETRIES = 5
_LIST_TRIES = 6
"""Tries of a reconciliation listing (each already retried by the transport) before the items
it was for are given up as ``unconfirmed`` (at run time) or the run stops (at restart)."""
"""Extra attempts of a create the API refused with 429 (surely not created), after the
transport's own retries; the shared gate is paused by each 429 meanwhile."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


@dataclass(slots=True)
class BulkStats:
    """Where a bulk job stands (cheap to read at any time)."""

    items: int = 0
    """Items read from the iterable so far."""
    earlier: int = 0
    """Items settled by an earlier run (handed over again)."""
    sending: int = 0
    """Creates in flight (or being reconciled)."""
    created: int = 0
    """Tasks created by this run."""
    reattached: int = 0
    """Tasks created by an earlier run and watched again by this one."""
    reconciled: int = 0
    """Ambiguous creates matched to their task."""
    uploaded: int = 0
    """Local files uploaded as assets by this run."""
    uploads_reused: int = 0
    """Local files whose asset an earlier run (or item) had uploaded already: not sent."""
    running: int = 0
    """Tasks being watched now."""
    settled: Counter[str] = field(default_factory=Counter)
    """Items with a result, by status (earlier runs' included)."""
    requests: int = 0
    """API requests of this run (creates, checks, lists, retries)."""

    @property
    def done(self) -> int:
        """Items with a result."""
        return sum(self.settled.values())


@dataclass(slots=True)
class _Flight:
    item: BulkItem
    task_id: str | None = None


class _Ambiguous(Exception):
    """No single task can be matched to an item (the message says why)."""


class BulkJob:
    """Create a task for every item, watch them all, and yield each item's
    :class:`BulkResult` as soon as it is settled.

    Use it as ``async with BulkJob(client, items, state="job.sqlite") as job:`` then
    ``async for result in job:``. With the same ``state`` file, a rerun (after a crash, a
    Ctrl-C, or a finished run) resumes: no item is created twice, tasks still running are
    watched again, and items settled earlier are handed over again with ``earlier=True``.

    Args:
        client: the :class:`AsyncTwelveLabs` client to use.
        items: :class:`BulkItem` objects (an iterable or async iterable, read lazily).
        state: the SQLite state file (``None``: in memory, nothing to resume from).
        concurrency: the most items in progress at once (created and not yet settled).
        requests_per_minute: one limit over every request of the job: creates, status
            checks, lists and retries.
        timeout: each task's deadline in seconds from when it is watched.
        poll_interval, max_poll_interval: the poller's intervals (see ``client.poller``).
        reconcile_delay: seconds after an intent before a listing that does not show its
            task proves the create never reached the API.
        retry_unconfirmed: reconcile ``unconfirmed`` items of earlier runs again, creating
            those that a listing proves absent (analysis: re-sent with the same key).
    """

    def __init__(
        self,
        client: AsyncTwelveLabs,
        items: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        state: str | os.PathLike[str] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        requests_per_minute: float | None = None,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        reconcile_delay: float = DEFAULT_RECONCILE_DELAY,
        retry_unconfirmed: bool = False,
        _backend: Backend | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if reconcile_delay < 0:
            raise ValueError("reconcile_delay must be 0 or more")
        self._items = items
        self._state = JobState(state)
        self._concurrency = concurrency
        self._reconcile_delay = reconcile_delay
        self._retry_unconfirmed = retry_unconfirmed
        if _backend is None:
            _backend = HttpBackend(
                client,
                RequestGate(requests_per_minute),
                max_concurrency=min(concurrency, 16),
                timeout=timeout,
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
            )
        self._backend = _backend
        self._stats = BulkStats()
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._active: set[str] = set()
        """``custom_id`` of every item in progress (a repeated one would wait forever)."""
        self._sending_inputs: Counter[tuple[str, tuple[str, str] | None]] = Counter()
        """Unanswered creates by input: a task found for one may be another's."""
        self._slots = anyio.Semaphore(concurrency)
        self._upload_slots = anyio.Semaphore(_UPLOADS_AT_ONCE)
        self._upload_locks: dict[str, anyio.Lock] = {}
        self._watching = 0
        self._watch_wake = anyio.Event()
        self._fatal: BaseException | None = None
        self._stop_error: BaseException | None = None
        self._closing = False
        self._fatal_raised = False
        self._last: BulkResult | None = None
        self._started = False
        self._task_group: TaskGroup | None = None
        self._send: MemoryObjectSendStream[BulkResult]
        self._recv: MemoryObjectReceiveStream[BulkResult]

    def __repr__(self) -> str:
        return f"<BulkJob state={self._state.path!r} done={self._stats.done}>"

    @property
    def stats(self) -> BulkStats:
        """Counts so far (see :class:`BulkStats`)."""
        self._stats.requests = self._backend.gate.requests
        return self._stats

    @property
    def job_id(self) -> str:
        """The job's id (stored in the state file; known once the job is entered)."""
        return self._state.job_id

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> BulkJob:
        if self._started:
            raise RuntimeError("A BulkJob can be entered only once")
        self._started = True
        await self._state.open()
        self._send, self._recv = anyio.create_memory_object_stream[BulkResult](self._concurrency)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None and self._last is not None:
            self._acknowledge(self._last)
            self._last = None
        assert self._task_group is not None
        self._closing = True
        self._task_group.cancel_scope.cancel()
        try:
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._recv.close()
            await self._state.close()
        if self._fatal is not None and not self._fatal_raised and exc is None:
            self._fatal_raised = True
            raise self._fatal

    def __aiter__(self) -> AsyncIterator[BulkResult]:
        return self

    async def __anext__(self) -> BulkResult:
        if not self._started:
            raise RuntimeError("Use the job inside 'async with BulkJob(...) as job:'")
        if self._last is not None:
            self._acknowledge(self._last)
            self._last = None
        try:
            result = await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._fatal is not None and not self._fatal_raised:
                self._fatal_raised = True
                raise self._fatal from None
            raise StopAsyncIteration from None
        self._last = result
        return result

    def _acknowledge(self, result: BulkResult) -> None:
        """The caller has the result: mark the item settled (results without a task were
        recorded before they were handed over)."""
        if result.earlier or result.status in (REJECTED, UNCONFIRMED):
            return
        self._state.record_settled(
            result.custom_id, result.kind, result.status, result.task_id, result.error
        )

    async def _run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._state.run_writer)
                async with self._backend:
                    group.start_soon(self._watch_loop)
                    await self._recover()
                    await self._produce(group)
                    for _ in range(self._concurrency):  # every item has handed over its result
                        await self._slots.acquire()
                    group.cancel_scope.cancel()
        except Exception as error:
            first = _first_error(error)
            if self._closing:
                # The caller left the block: work cut short by that (a create answered as
                # its poller closed) is no failure of the job; the state keeps every task id
                # already known, and the next run picks them up.
                logger.debug("bulk job closed while %s", first)
                return
            self._fatal = first
            logger.error("bulk job stopped: %s", self._fatal)
        finally:
            self._send.close()

    # --- reading items --------------------------------------------------------------------

    async def _produce(self, group: TaskGroup) -> None:
        # Items are looked up in the state file a chunk at a time; an async source may trickle,
        # so its items are not held back waiting for a chunk to fill.
        size = 1 if isinstance(self._items, AsyncIterable) else _CHUNK
        chunk: list[BulkItem] = []
        async for item in _iterate(self._items):
            if self._stop_error is not None:
                return  # stopping: the items not yet read stay for the rerun
            if not isinstance(item, BulkItem):
                raise TypeError(f"bulk items must be BulkItem objects, got {type(item).__name__}")
            chunk.append(item)
            if len(chunk) >= size:
                await self._feed(chunk, group)
                chunk = []
        if chunk:
            await self._feed(chunk, group)

    async def _feed(self, chunk: list[BulkItem], group: TaskGroup) -> None:
        rows = await self._state.lookup([item.custom_id for item in chunk])
        for item in chunk:
            self._stats.items += 1
            row = rows.get(item.custom_id)
            if row is not None and row.state == SETTLED:
                self._stats.earlier += 1
                await self._emit(
                    BulkResult(
                        item.custom_id,
                        item.kind,
                        row.status or "unknown",
                        row.task_id,
                        None,
                        row.error,
                        item.metadata,
                        earlier=True,
                    ),
                    slot=False,
                )
                continue
            if item.custom_id in self._active:
                raise ValueError(f"custom_id {item.custom_id!r} appears twice among the items")
            await self._slots.acquire()
            if self._stop_error is not None:
                self._slots.release()
                return  # stopping: no new create; the creates in flight end the job
            self._active.add(item.custom_id)
            if row is not None and row.state == CREATED and row.task_id:
                self._stats.reattached += 1
                await self._attach_or_settle(_Flight(item), row.task_id)
            else:
                group.start_soon(self._create, _Flight(item))

    # --- creating -------------------------------------------------------------------------

    async def _create(self, flight: _Flight) -> None:
        path = local_path(flight.item.kind, flight.item.params)
        if path is not None:
            try:
                asset_id, asset_status, asset_error = await self._local_asset(path)
            except InvalidFileError as refused:
                await self._settle_now(flight, REJECTED, None, str(refused))
                return
            except APIStatusError as refused_by_api:
                code = refused_by_api.status_code
                if not 400 <= code < 500 or code in (408, 429):
                    self._stop_upload(refused_by_api)
                    return
                await self._settle_now(flight, REJECTED, None, _describe(refused_by_api))
                return
            except (APIError, UploadError) as failed:
                self._stop_upload(failed)
                return
            if asset_status != "ready":
                why = f"{path!r} was uploaded as asset {asset_id}, which ended {asset_status!r}"
                why += f": {asset_error}" if asset_error else ""
                await self._settle_now(flight, "failed", None, why)
                return
            flight.item = dataclasses.replace(
                flight.item, params=with_asset(flight.item.kind, flight.item.params, asset_id)
            )
        item = flight.item
        self._stats.sending += 1
        sending = (item.kind, input_key(item.kind, item.params))
        self._sending_inputs[sending] += 1
        stop: BaseException | None = None
        try:
            intent_at = time.time()
            params = _encode(dict(item.params)).decode()
            await self._state.record_intent(item.custom_id, item.kind, intent_at, params)
            status, task_id, error = await self._resolve(item, intent_at)
        except (AuthenticationError, PermissionDeniedError, APIConnectionError) as fatal:
            # Every other create would fail alike. Raising now would cancel the creates in
            # flight and leave their intents to reconcile on the next run; instead no new
            # create starts, those in flight get their own answer, and the last one out
            # stops the job with the first such error.
            if self._stop_error is None:
                self._stop_error = fatal
            stop = self._stop_error
        finally:
            self._stats.sending -= 1
            self._sending_inputs[sending] -= 1
            if not self._sending_inputs[sending]:
                del self._sending_inputs[sending]
        if stop is not None or self._stop_error is not None:
            if self._stats.sending == 0:
                raise self._stop_error  # type: ignore[misc]
            return
        if task_id is not None:
            self._state.record_task(item.custom_id, task_id)
            await self._attach_or_settle(flight, task_id)
        else:
            await self._settle_now(flight, status, None, error)

    def _stop_upload(self, error: BaseException) -> None:
        """An upload failed for want of the API (nothing was created for its item): as for a
        create, the job stops once the creates in flight have their answer (a rerun resumes
        the upload from the session the state file recorded)."""
        if self._stop_error is None:
            self._stop_error = error
        if self._stats.sending == 0:
            raise self._stop_error

    async def _local_asset(self, path: str) -> tuple[str, str | None, str | None]:
        """The asset of a local file: ``(asset_id, status, error message)``. A file uploaded
        by this job before (same path, size and modification time) is never sent again; an
        upload cut short is resumed from the session the state file recorded."""
        real, size, mtime = await anyio.to_thread.run_sync(_file_identity, path)
        async with self._upload_locks.setdefault(real, anyio.Lock()):
            upload_id = None
            if size:
                upload_id, asset_id, status = await self._state.upload(real, size, mtime)
                if asset_id is not None and status == "ready":
                    self._stats.uploads_reused += 1
                    return asset_id, status, None

            def remember(session_id: str) -> None:
                self._state.record_upload(real, size, mtime, upload_id=session_id)

            async with self._upload_slots:
                try:
                    asset = await self._backend.upload(real, upload_id, remember)
                except (UploadError, NotFoundError):
                    if upload_id is None:
                        raise
                    # The recorded session is gone or finished elsewhere: a fresh one.
                    asset = await self._backend.upload(real, None, remember)
            self._stats.uploaded += 1
            assert asset.id is not None
            await self._state.record_upload(
                real, size, mtime, upload_id=None, asset_id=asset.id, status=asset.status
            ).wait()
            return asset.id, asset.status, asset.error_message

    async def _attach_or_settle(self, flight: _Flight, task_id: str) -> None:
        """Watch the item's task, unless another item of this run already holds it (which
        only a wrong match could cause): then this item cannot be proven, and says so."""
        holder = self._flights.get((flight.item.kind, task_id))
        if holder is None:
            self._attach(flight, task_id)
            return
        await self._settle_now(
            flight,
            UNCONFIRMED,
            None,
            f"unconfirmed: task {task_id} was given to this item and to "
            f"{holder.item.custom_id!r}; check both with `twelvelabs-async tasks get`",
        )

    async def _resolve(
        self, item: BulkItem, intent_at: float, *, reconcile: bool = True
    ) -> tuple[str, str | None, str | None]:
        """Send the item's create (its intent is on disk) and find out what it made:
        ``(CREATED, task_id, None)``, or ``(REJECTED | UNCONFIRMED, None, error)``.

        Raises:
            AuthenticationError, PermissionDeniedError: the key was refused (nothing made).
        """
        key = idempotency_key(self._state.job_id, item.custom_id)
        attempts = 0
        while True:
            try:
                task_id = await self._backend.create(item.kind, item.params, key)
            except (AuthenticationError, PermissionDeniedError):
                # Nothing was created; the whole job stops (every create would fail alike).
                await self._state.forget(item.custom_id).wait()
                raise
            except RateLimitError as error:
                attempts += 1
                if attempts <= _RATE_LIMIT_RETRIES:  # a 429 surely created nothing
                    await anyio.sleep(min(0.1 * 2.0**attempts, 5.0))
                    continue
                return REJECTED, None, _describe(error)
            except APIStatusError as error:
                if 400 <= error.status_code < 500 and error.status_code != 408:
                    return REJECTED, None, _describe(error)
                ambiguous: BaseException = error
            except APIConnectionError as error:
                if _never_sent(error):
                    # The API could not be reached at all (after the transport's retries):
                    # nothing was created, and every other create would fail alike.
                    await self._state.forget(item.custom_id).wait()
                    raise
                ambiguous = error
            except ResponseDecodeError as error:
                ambiguous = error
            except (TypeError, ValueError) as error:
                # Refused before sending (unknown or malformed parameters): nothing exists.
                return REJECTED, None, f"invalid parameters: {error}"
            else:
                if task_id is not None:
                    self._stats.created += 1
                    return CREATED, task_id, None
                ambiguous = ValueError("the answer carried no task id")
            return await self._reconcile(item, intent_at, ambiguous, reconcile=reconcile)

    async def _reconcile(
        self, item: BulkItem, intent_at: float, error: BaseException, *, reconcile: bool
    ) -> tuple[str, str | None, str | None]:
        """The create may have reached the API: find its task, or settle as unconfirmed."""
        logger.warning("create of %r may have reached the API: %s", item.custom_id, error)
        if not reconcile:
            return UNCONFIRMED, None, _unconfirmed(item, error, None)
        if item.kind == "analyze":
            # The same Idempotency-Key: the API answers with the task the first try made, or
            # creates it now if the first try never arrived.
            await anyio.sleep(min(self._reconcile_delay, 2.0))
            return await self._resolve(item, intent_at, reconcile=False)
        await self._sleep_until(intent_at + self._reconcile_delay)
        try:
            (found,) = await self._match_retrying(item.kind, [(item.params, intent_at)])
        except (APIError, ResponseDecodeError) as list_error:
            if isinstance(list_error, (AuthenticationError, PermissionDeniedError)):
                raise
            found = _Ambiguous(f"the tasks could not be listed to find it ({list_error})")
        if isinstance(found, _Ambiguous):
            return UNCONFIRMED, None, _unconfirmed(item, error, found)
        if found is None:
            return UNCONFIRMED, None, _unconfirmed(item, error, None)
        self._stats.reconciled += 1
        return CREATED, found, None

    async def _match_retrying(
        self, kind: TaskKind, wanted: list[tuple[Any, float]]
    ) -> list[str | _Ambiguous | None]:
        """:meth:`_match`, its listing tried again (with a growing pause) when it fails
        transiently even after the transport's own retries; a refused key is final."""
        for attempt in range(1, _LIST_TRIES + 1):
            try:
                return await self._match(kind, wanted)
            except (AuthenticationError, PermissionDeniedError):
                raise
            except (APIError, ResponseDecodeError) as error:
                if attempt == _LIST_TRIES:
                    raise
                logger.warning("listing %s tasks to reconcile failed: %s", kind, error)
                await anyio.sleep(min(0.2 * 2.0**attempt, 10.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _match(
        self, kind: TaskKind, wanted: list[tuple[Any, float]]
    ) -> list[str | _Ambiguous | None]:
        """For each embed item ``(params, intent_at)``: the one task matching its input (and
        model), created since the intent and claimed by no other item; ``None`` if there is
        none; :class:`_Ambiguous` if that cannot be told (an input a list does not show,
        several matching tasks, or another create of the same input still unanswered)."""
        keys = [input_key(kind, params) for params, _ in wanted]
        verdicts: list[str | _Ambiguous | None] = [
            _Ambiguous("its input (not a URL or a file name) cannot be found in a list")
            if key is None
            else None
            for key in keys
        ]
        if all(key is None for key in keys):
            return verdicts
        start = datetime.fromtimestamp(
            min(at for _, at in wanted) - DEFAULT_RECONCILE_MARGIN, tz=timezone.utc
        )
        end = datetime.now(timezone.utc) + timedelta(seconds=DEFAULT_RECONCILE_MARGIN)
        candidates: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        async for listed in self._backend.listing(kind, start, end):
            task_id = getattr(listed, "id", None)
            if not isinstance(task_id, str) or not task_id:
                continue
            listed_model = getattr(listed, "model_name", None)
            for shown in listed_keys(listed):
                candidates.setdefault(shown, []).append((task_id, listed_model))
        await self._state.flush()
        every = {task_id for found in candidates.values() for task_id, _ in found}
        taken = await self._state.claimed(kind, sorted(every))
        taken |= {task_id for (k, task_id) in self._flights if k == kind}
        for index, ((params, _), key) in enumerate(zip(wanted, keys, strict=True)):
            if key is None:
                continue
            if self._sending_inputs[(kind, key)] > 1:
                # Another item's create of the same input is unanswered too: a task found
                # now may be that one's.
                verdicts[index] = _Ambiguous("another create of the same input is unanswered")
                continue
            model = params.get("model_name") if isinstance(params, dict) else None
            free = list(
                dict.fromkeys(
                    task_id
                    for task_id, listed_model in candidates.get(key, [])
                    if task_id not in taken and (model is None or listed_model in (None, model))
                )
            )
            if len(free) > 1:
                verdicts[index] = _Ambiguous(
                    f"{len(free)} tasks match its input: {', '.join(free)}"
                )
            elif free:
                taken.add(free[0])
                verdicts[index] = free[0]
        return verdicts

    # --- restart --------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Resolve every item a crash left ``sending`` before any new create is sent."""
        if self._retry_unconfirmed:
            await self._state.reopen(UNCONFIRMED).wait()
        rows = await self._state.in_state(SENDING)
        if not rows:
            return
        logger.info("reconciling %d creates left unanswered by an earlier run", len(rows))
        by_kind: dict[str, list[Row]] = {}
        for row in rows:
            by_kind.setdefault(row.kind, []).append(row)
        for kind, group in by_kind.items():
            if kind == "analyze":
                for row in group:
                    await self._recover_analyze(row)
            else:
                await self._recover_embed(kind, group)  # type: ignore[arg-type]
        await self._state.flush()

    async def _recover_analyze(self, row: Row) -> None:
        params = _decode(row.params) if row.params else {}
        item = BulkItem(row.custom_id, "analyze", params)
        status, task_id, error = await self._resolve(item, row.intent_at or time.time())
        if task_id is not None:
            self._state.record_task(row.custom_id, task_id)
        else:
            # Handed over when the items reach this one (as settled by an earlier run).
            self._state.record_settled(row.custom_id, "analyze", status, None, error)

    async def _recover_embed(self, kind: TaskKind, rows: list[Row]) -> None:
        wanted = [(_decode(row.params) if row.params else {}, row.intent_at or 0.0) for row in rows]
        await self._sleep_until(max(at for _, at in wanted) + self._reconcile_delay)
        # A listing that keeps failing stops the run here, before any create is sent: what
        # those creates made cannot be known yet, and a rerun reconciles them again.
        verdicts = await self._match_retrying(kind, wanted)
        for row, (params, _), found in zip(rows, wanted, verdicts, strict=True):
            if isinstance(found, _Ambiguous):
                item = BulkItem(row.custom_id, kind, params)
                error = RuntimeError("the run sending it stopped before any answer")
                self._state.record_settled(
                    row.custom_id, kind, UNCONFIRMED, None, _unconfirmed(item, error, found)
                )
            elif found is not None:
                self._stats.reconciled += 1
                self._state.record_task(row.custom_id, task_id=found)
            else:
                # Listed long enough after the intent, and absent: it never reached the API.
                self._state.forget(row.custom_id)

    # --- watching -------------------------------------------------------------------------

    def _attach(self, flight: _Flight, task_id: str) -> None:
        flight.task_id = task_id
        self._flights[(flight.item.kind, task_id)] = flight
        self._watching += 1
        self._stats.running += 1
        self._backend.watch(flight.item.kind, task_id)
        self._watch_wake.set()

    async def _watch_loop(self) -> None:
        while True:
            if self._watching == 0:
                await self._watch_wake.wait()
                self._watch_wake = anyio.Event()
                continue
            async for outcome in self._backend.outcomes():
                await self._settle_outcome(outcome)

    async def _settle_outcome(self, outcome: Outcome) -> None:
        flight = self._flights.pop((outcome.kind, outcome.task_id), None)
        if flight is None:
            return
        self._watching -= 1
        self._stats.running -= 1
        item = flight.item
        await self._emit(
            BulkResult(
                item.custom_id,
                item.kind,
                outcome.status,
                outcome.task_id,
                outcome.task,
                _outcome_error(outcome),
                item.metadata,
            )
        )

    # --- results --------------------------------------------------------------------------

    async def _settle_now(
        self, flight: _Flight, status: str, task_id: str | None, error: str | None
    ) -> None:
        """Settle an item that has no task to watch: on disk first, then handed over."""
        item = flight.item
        await self._state.record_settled(item.custom_id, item.kind, status, task_id, error).wait()
        await self._emit(
            BulkResult(item.custom_id, item.kind, status, task_id, None, error, item.metadata)
        )

    async def _emit(self, result: BulkResult, *, slot: bool = True) -> None:
        try:
            await self._send.send(result)
        finally:
            if slot:
                self._active.discard(result.custom_id)
                self._slots.release()
        self._stats.settled[result.status] += 1

    @staticmethod
    async def _sleep_until(wall_time: float) -> None:
        delay = wall_time - time.time()
        if delay > 0 and math.isfinite(delay):
            await anyio.sleep(delay)


def _file_identity(path: str) -> tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)`` of a regular file; size 0 when it is none (the
    upload then refuses it with a clear error)."""
    real = os.path.abspath(path)
    try:
        stat = os.stat(real)
    except OSError:
        return real, 0, 0
    if os.path.isdir(real):
        return real, 0, 0
    return real, stat.st_size, stat.st_mtime_ns


async def _iterate(items: Iterable[BulkItem] | AsyncIterable[BulkItem]) -> AsyncIterator[BulkItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _first_error(error: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while True:
        inner = getattr(error, "exceptions", None)
        if not inner:
            return error
        error = inner[0]


def _never_sent(error: APIConnectionError) -> bool:
    """Whether the connection itself failed, so that the request surely never left."""
    return not error.request_sent


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _outcome_error(outcome: Outcome) -> str | None:
    if outcome.error is not None:
        return _describe(outcome.error)
    if outcome.status != "ready" and outcome.task is not None:
        message = getattr(outcome.task, "error_message", None)
        if isinstance(message, str) and message:
            return message
    return None


def _unconfirmed(item: BulkItem, error: BaseException, why: _Ambiguous | None) -> str:
    cli = item.kind.replace("_", "-")
    reason = f"; {why}" if why is not None else "; no task matching its input was found"
    if item.kind == "analyze":
        reason = "; sending it again with the same Idempotency-Key failed too"
    return (
        f"unconfirmed: the create may have reached the API without an answer ({error}){reason}. "
        f"It was not sent again, so that no second task is created. Look for it with "
        f"`twelvelabs-async tasks list {cli}`; to reconcile and, if no task exists, create it, "
        f"rerun with --retry-unconfirmed (BulkJob(retry_unconfirmed=True))."
    )
