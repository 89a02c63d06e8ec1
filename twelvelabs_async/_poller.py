"""The concurrent poller: watch many tasks of every kind until each is final.

One anyio task group holds a fixed pool of workers fed by a dispatcher. The dispatcher keeps
two heaps (next check times and deadlines) and, for each kind of task with enough members, a
*sweep* schedule: a sweep lists the kind's non-final tasks (50 per request, restricted to the
creation-time window of the watched tasks where the API allows it) and sends individual
retrieves only for watched tasks that have left that list. A task is delivered as final only
from its own retrieve response, so a stale or shifting list costs at most an extra request.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:  # annotations only: importing anyio's streams costs ~10 ms at import time
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._exceptions import ClientClosedError
from ._polling import (
    NOT_FOUND_CONFIRMATIONS,
    ErrorAction,
    PollSchedule,
    classify_error,
    note_unknown_status,
)
from ._ratelimit import RequestGate
from ._transport import RequestOptions, ResponseEvent, Transport, parse_retry_hint
from ._types import TaskStatus, WatchKind
from .resources._base import DEFAULT_TASK_TIMEOUT, TaskResource, poll_schedule

__all__ = ["Outcome", "Poller", "PollerStats", "StatusChange"]

logger = logging.getLogger("twelvelabs_async")

SWEEP_PAGE_LIMIT = 50
SWEEP_MIN_TASKS = 3
"""A kind is swept once at least this many of its tasks are watched; fewer are polled alone."""
SWEEP_REQUESTS_PER_TASK = 0.2
"""Sweeps are spaced so that they cost about this many list requests per task they find
finished; together with the one retrieve per task this keeps a batch near 1.2-1.3 requests."""
SWEEP_MISSES_BEFORE_SOLO = 2
"""A task absent from this many sweeps in a row, yet not final, is polled on its own."""
MAX_PROBE_SKIPS = 3
"""Sweeps that may end after page one because nothing moved, before a full walk is forced."""
_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
_RATE_LIMIT_FLOOR = 0.02
"""Pause everything when ``X-Ratelimit-Remaining`` drops to this share of the limit."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one watched task ended.

    Attributes:
        task_id: the task's id.
        kind: ``"embed_v2"``, ``"embed_v1"`` or ``"analyze"``.
        status: ``"ready"``, ``"failed"``, ``"canceled"``, or the poller's own verdict
            ``"timed_out"`` (deadline passed) or ``"not_found"`` (the task answered 404).
        task: the last task model retrieved (the final one for a final status), or ``None``.
        error: the last error for ``timed_out``/``not_found`` outcomes, else ``None``.
    """

    task_id: str
    kind: WatchKind
    status: str
    task: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """``True`` for a ``ready`` task."""
        return self.status == TaskStatus.READY


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status transition reported to ``on_change`` (``new`` may be a poller verdict)."""

    task_id: str
    kind: WatchKind
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class PollerStats:
    """A snapshot of a poller's progress (cheap to take at any time)."""

    watched: int
    pending: int
    pending_by_status: dict[str, int]
    ready: int
    failed: int
    canceled: int
    timed_out: int
    not_found: int
    requests: int
    retries: int
    request_rate: int
    """Requests sent in the last 60 seconds."""
    slowdowns: int
    """How often a 429 or an exhausted rate limit paused every request."""

    @property
    def delivered(self) -> int:
        """Tasks with an outcome."""
        return self.ready + self.failed + self.canceled + self.timed_out + self.not_found


_Window = tuple[datetime, datetime]


class _Mode(Enum):
    SWEEP = "sweep"
    SOLO = "solo"


class _Watch:
    __slots__ = (
        "checks",
        "created_at",
        "deadline",
        "done",
        "errors",
        "generation",
        "group",
        "inflight",
        "last_error",
        "last_task",
        "misses",
        "mode",
        "not_found",
        "status",
        "task_id",
    )

    def __init__(self, task_id: str, group: _Group, deadline: float | None, mode: _Mode) -> None:
        self.task_id = task_id
        self.group = group
        self.deadline = deadline
        self.mode = mode
        self.status: str | None = None
        self.created_at: datetime | None = None
        self.last_task: Any = None
        self.last_error: BaseException | None = None
        self.checks = 0
        self.errors = 0
        self.not_found = 0
        self.misses = 0
        self.generation = 0
        self.inflight = False
        self.done = False


class _Group:
    """The watched tasks of one kind, and that kind's sweep state."""

    def __init__(self, resource: TaskResource[Any, Any, Any]) -> None:
        self.resource = resource
        self.kind: WatchKind = resource.kind
        self.pending: dict[str, _Watch] = {}
        self.next_sweep = math.inf
        self.sweeping = False
        self.last_sweep_at: float | None = None
        self.last_sweep_cost = 1
        self.completion_rate = 0.0
        self.idle_interval: float | None = None
        self.last_totals: dict[str, int] = {}
        self.last_window: _Window | None = None
        self.probe_skips = 0
        self.sweep_failures = 0

    def sweep_members(self) -> list[_Watch]:
        return [w for w in self.pending.values() if w.mode is _Mode.SWEEP]


@dataclass(order=True, slots=True)  # slots: one per watched task's deadline, ~80 B less each
class _Due:
    when: float
    seq: int
    watch: _Watch = field(compare=False)
    generation: int = field(compare=False)


class Poller:
    """Watches tasks of every kind concurrently until each is final; see ``client.poller()``.

    Use it as an async context manager; leaving the block stops all polling at once.
    """

    def __init__(
        self,
        transport: Transport,
        resources: dict[WatchKind, TaskResource[Any, Any, Any]],
        *,
        max_concurrency: int = 16,
        requests_per_minute: float | None = None,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        on_change: Callable[[StatusChange], None] | None = None,
        sweep: bool = True,
        max_retries: int | None = None,
        gate: RequestGate | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None for no deadline)")
        self._transport = transport
        self._resources = resources
        self._max_concurrency = max_concurrency
        self._timeout = timeout
        self._schedule: PollSchedule = poll_schedule(poll_interval, max_poll_interval)
        self._on_change = on_change
        self._sweep_enabled = sweep
        # A gate passed in is shared with other work (bulk creates) under one rate limit.
        self._gate = gate if gate is not None else RequestGate(requests_per_minute)
        self._options = RequestOptions(gate=self._gate, max_retries=max_retries)
        self._groups: dict[WatchKind, _Group] = {}
        self._watches: dict[tuple[WatchKind, str], _Watch] = {}
        self._heap: list[_Due] = []
        self._deadlines: list[_Due] = []
        self._seq = itertools.count()
        self._wakeup = anyio.Event()
        self._counts: Counter[str] = Counter()
        self._pending_by_status: Counter[str] = Counter()
        self._outstanding = 0
        self._fatal: BaseException | None = None
        self._fatal_raised = False
        self._started = False
        self._closed = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._inner_scope: anyio.CancelScope | None = None
        # Created on entry: a poller that is never entered holds no open streams.
        self._results_send: MemoryObjectSendStream[Outcome]
        self._results_recv: MemoryObjectReceiveStream[Outcome]

    def __repr__(self) -> str:
        return f"<Poller watched={len(self._watches)} pending={self._outstanding}>"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Poller:
        if self._started:
            raise RuntimeError("A Poller can be entered only once")
        self._started = True
        self._results_send, self._results_recv = anyio.create_memory_object_stream[Outcome](
            math.inf
        )
        self._start_schedules()
        self._transport.hooks.on_response.append(self._observe)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        self._closed = True
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            # The caller's own exception is not handed to the task group, so it propagates
            # as it is instead of inside an exception group.
            await self._task_group.__aexit__(None, None, None)
        finally:
            if self._observe in self._transport.hooks.on_response:
                self._transport.hooks.on_response.remove(self._observe)
            self._results_recv.close()
        if self._fatal is not None and not self._fatal_raised and exc is None:
            self._fatal_raised = True
            raise self._fatal
        return None

    async def _run(self) -> None:
        try:
            work_send, work_recv = anyio.create_memory_object_stream[tuple[str, Any]](0)
            async with anyio.create_task_group() as group:
                self._inner_scope = group.cancel_scope
                for _ in range(self._max_concurrency):
                    group.start_soon(self._worker, work_recv.clone())
                work_recv.close()
                async with work_send:
                    await self._dispatch(work_send)
        finally:
            self._results_send.close()

    # --- public API -----------------------------------------------------------------------

    def add(self, resource: TaskResource[Any, Any, Any], task_ids: Iterable[str] | str) -> int:
        """Watch ``task_ids`` of ``resource``'s kind (e.g. ``client.embed.v2.tasks``).

        Can be called before or while iterating. An id already watched or delivered is
        ignored. Returns how many ids were new.
        """
        if self._closed:
            raise ClientClosedError("This poller is closed; open a new one.")
        if isinstance(task_ids, str):
            task_ids = [task_ids]
        kind = resource.kind
        group = self._groups.get(kind)
        if group is None:
            group = self._groups[kind] = _Group(resource)
        now = anyio.current_time() if self._started else 0.0
        deadline_offset = self._timeout
        # Already swept: new tasks simply join the sweeps (no pass over every pending task).
        swept = self._sweep_enabled and len(group.pending) >= SWEEP_MIN_TASKS
        mode = _Mode.SWEEP if swept else _Mode.SOLO
        added = 0
        new: list[_Watch] = []
        for task_id in task_ids:
            if not isinstance(task_id, str) or not task_id:
                raise ValueError(f"task ids must be non-empty strings, got {task_id!r}")
            key = (kind, task_id)
            if key in self._watches:
                continue
            deadline = None if deadline_offset is None else now + deadline_offset
            watch = _Watch(task_id, group, deadline, mode)
            self._watches[key] = watch
            group.pending[task_id] = watch
            self._pending_by_status["unknown"] += 1
            self._outstanding += 1
            added += 1
            if deadline is not None and self._started:
                self._push(self._deadlines, deadline, watch)
            new.append(watch)
        if added:
            self._counts["watched"] += added
            if not swept:
                self._rebalance(group, now)
            if self._started:
                for watch in new:
                    if watch.mode is _Mode.SOLO:
                        self._schedule_check(watch, self._schedule.first_delay())
            self._wake()
        return added

    def notify(self, task_id: str, kind: WatchKind | None = None) -> bool:
        """Check ``task_id`` now (e.g. a webhook said it changed). Returns whether it is
        watched and still pending."""
        for group in self._groups.values():
            if kind is not None and group.kind != kind:
                continue
            watch = group.pending.get(task_id)
            if watch is not None and not watch.done:
                self._schedule_check(watch, 0.0)
                self._wake()
                return True
        return False

    async def as_completed(self) -> AsyncIterator[Outcome]:
        """Each watched task's :class:`Outcome`, once, as soon as it is known.

        Ends by itself when every watched task has been delivered. Raises
        :class:`AuthenticationError` / :class:`PermissionDeniedError` (never an exception
        group) if the API refuses the key.
        """
        if not self._started:
            raise RuntimeError("Use the poller inside 'async with client.poller() as poller:'")
        while self._outstanding > 0 or self._results_recv.statistics().current_buffer_used:
            try:
                outcome = await self._results_recv.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                if self._fatal is not None and not self._fatal_raised:
                    self._fatal_raised = True
                    raise self._fatal from None
                return
            self._outstanding -= 1
            yield outcome

    @property
    def stats(self) -> PollerStats:
        """Counts by outcome and status, requests, retries and the current request rate."""
        counts = self._counts
        by_status = {k: v for k, v in self._pending_by_status.items() if v}
        return PollerStats(
            watched=counts["watched"],
            pending=sum(by_status.values()),
            pending_by_status=by_status,
            ready=counts[TaskStatus.READY],
            failed=counts[TaskStatus.FAILED],
            canceled=counts[TaskStatus.CANCELED],
            timed_out=counts[TaskStatus.TIMED_OUT],
            not_found=counts[TaskStatus.NOT_FOUND],
            requests=self._gate.requests,
            retries=self._gate.retries,
            request_rate=self._gate.rate_per_minute,
            slowdowns=self._gate.slowdowns,
        )

    # --- scheduling -----------------------------------------------------------------------

    def _wake(self) -> None:
        self._wakeup.set()

    def _push(self, heap: list[_Due], when: float, watch: _Watch) -> None:
        heapq.heappush(heap, _Due(when, next(self._seq), watch, watch.generation))

    def _schedule_check(self, watch: _Watch, delay: float) -> None:
        watch.generation += 1
        self._push(self._heap, anyio.current_time() + delay, watch)

    def _rebalance(self, group: _Group, now: float) -> None:
        """Put a kind's tasks under sweeps when there are enough of them, else poll each."""
        sweep = self._sweep_enabled and len(group.pending) >= SWEEP_MIN_TASKS
        for watch in group.pending.values():
            if watch.inflight:
                continue
            if sweep and watch.mode is _Mode.SOLO and watch.misses <= SWEEP_MISSES_BEFORE_SOLO:
                watch.mode = _Mode.SWEEP
                watch.generation += 1  # drop its solo schedule: sweeps cover it now
            elif not sweep and watch.mode is _Mode.SWEEP:
                watch.mode = _Mode.SOLO
                if self._started:
                    self._schedule_check(watch, self._schedule.first_delay())
        if sweep and group.next_sweep == math.inf:
            # The first sweep learns every task's creation time, which narrows later sweeps.
            group.next_sweep = now + min(self._schedule.initial, 1.0) * 0.5
        elif not sweep:
            group.next_sweep = math.inf

    def _start_schedules(self) -> None:
        now = anyio.current_time()
        for watch in self._watches.values():
            if watch.done:
                continue
            if self._timeout is not None:
                watch.deadline = now + self._timeout
                self._push(self._deadlines, watch.deadline, watch)
            if watch.mode is _Mode.SOLO:
                self._schedule_check(watch, self._schedule.first_delay())
        for group in self._groups.values():
            if group.next_sweep != math.inf:
                group.next_sweep = now

    async def _dispatch(self, work: MemoryObjectSendStream[tuple[str, Any]]) -> None:
        while True:
            # A fresh event before scanning, so a wake-up during the scan is not lost.
            self._wakeup = anyio.Event()
            now = anyio.current_time()
            while self._deadlines and self._deadlines[0].when <= now:
                due = heapq.heappop(self._deadlines)
                watch = due.watch
                if not watch.done and not watch.inflight:
                    self._deliver(watch, TaskStatus.TIMED_OUT, watch.last_task, watch.last_error)
            for group in self._groups.values():
                if (
                    group.next_sweep <= now
                    and not group.sweeping
                    and len(group.pending) >= SWEEP_MIN_TASKS
                ):
                    group.sweeping = True
                    await work.send(("sweep", group))
                    now = anyio.current_time()
            if self._heap and self._heap[0].when <= now:
                due = heapq.heappop(self._heap)
                watch = due.watch
                if due.generation == watch.generation and not watch.done and not watch.inflight:
                    watch.inflight = True
                    await work.send(("check", watch))
                continue
            next_time = math.inf
            if self._heap:
                next_time = self._heap[0].when
            if self._deadlines:
                next_time = min(next_time, self._deadlines[0].when)
            for group in self._groups.values():
                if not group.sweeping and len(group.pending) >= SWEEP_MIN_TASKS:
                    next_time = min(next_time, group.next_sweep)
            with anyio.move_on_after(max(next_time - anyio.current_time(), 0.0)):
                await self._wakeup.wait()

    async def _worker(self, work: MemoryObjectReceiveStream[tuple[str, Any]]) -> None:
        async with work:
            async for job, target in work:
                if job == "check":
                    await self._check(target)
                else:
                    await self._sweep(target)
                self._wake()

    # --- one task -------------------------------------------------------------------------

    async def _check(self, watch: _Watch) -> None:
        resource = watch.group.resource
        remaining = math.inf if watch.deadline is None else watch.deadline - anyio.current_time()
        error: Exception | None = None
        finished: Any = None
        checked: Any = None
        try:
            with anyio.move_on_after(remaining):
                try:
                    checked = await resource.check(watch.task_id, self._options)
                    watch.checks += 1
                    self._set_status(watch, checked.status)
                    watch.last_task = checked
                    watch.not_found = 0
                    if checked.is_final:
                        finished = await resource.complete(checked, watch.task_id, self._options)
                except Exception as exc:
                    error = exc
        finally:
            watch.inflight = False
        if watch.done:
            return
        if (checked is None and error is None) or (
            checked is not None and checked.is_final and finished is None and error is None
        ):
            # The deadline cut the check short.
            self._deliver(watch, TaskStatus.TIMED_OUT, watch.last_task, watch.last_error)
            return
        if error is not None:
            self._handle_error(watch, error)
            return
        if finished is not None:
            self._deliver(watch, str(checked.status), finished, None)
            return
        note_unknown_status(watch.group.kind, checked.status, watch.group.resource.known_statuses)
        if watch.mode is _Mode.SOLO:
            self._schedule_check(watch, self._schedule.delay(watch.checks))

    def _handle_error(self, watch: _Watch, error: Exception) -> None:
        action = classify_error(error)
        if action is ErrorAction.STOP_ALL:
            self._stop(error)
            return
        watch.last_error = error
        if action is ErrorAction.NOT_FOUND:
            watch.not_found += 1
            if watch.not_found > NOT_FOUND_CONFIRMATIONS:
                self._deliver(watch, TaskStatus.NOT_FOUND, watch.last_task, error)
                return
            self._schedule_check(watch, min(self._schedule.initial, 1.0))
            return
        watch.errors += 1
        logger.info("transient error checking %s %s: %s", watch.group.kind, watch.task_id, error)
        self._schedule_check(watch, self._schedule.delay(watch.errors + 1))

    def _set_status(self, watch: _Watch, status: str | None) -> None:
        old = watch.status
        if status == old:
            return
        self._pending_by_status[old or "unknown"] -= 1
        watch.status = status
        self._pending_by_status[status or "unknown"] += 1
        if self._on_change is not None and status is not None:
            self._emit(StatusChange(watch.task_id, watch.group.kind, old, status))

    def _emit(self, change: StatusChange) -> None:
        assert self._on_change is not None
        try:
            self._on_change(change)
        except Exception:
            logger.exception("on_change callback failed for %s", change.task_id)

    def _deliver(self, watch: _Watch, status: str, task: Any, error: BaseException | None) -> None:
        if watch.done:
            return
        watch.done = True
        watch.generation += 1
        group = watch.group
        group.pending.pop(watch.task_id, None)
        self._pending_by_status[watch.status or "unknown"] -= 1
        self._counts[status] += 1
        if status not in (TaskStatus.TIMED_OUT, TaskStatus.NOT_FOUND):
            error = None
        if self._on_change is not None and status != watch.status:
            self._emit(StatusChange(watch.task_id, group.kind, watch.status, status))
        watch.last_task = None  # the outcome keeps it; the watch is done
        # Likewise its last error: a transient one would otherwise pin its traceback (frames,
        # responses, buffers) for the poller's whole life, for every task that ever erred.
        watch.last_error = None
        self._results_send.send_nowait(Outcome(watch.task_id, group.kind, status, task, error))
        if len(group.pending) < SWEEP_MIN_TASKS:
            self._rebalance(group, anyio.current_time())

    def _stop(self, error: BaseException) -> None:
        if self._fatal is None:
            self._fatal = error
            logger.error("poller stopped: %s", error)
        if self._inner_scope is not None:
            self._inner_scope.cancel()

    # --- sweeps ---------------------------------------------------------------------------

    @staticmethod
    def _window(members: Iterable[_Watch]) -> _Window | None:
        """The creation-time window holding every member (``None`` while any is unknown)."""
        oldest = newest = None
        for watch in members:
            created = watch.created_at
            if created is None:
                return None
            if oldest is None or created < oldest:
                oldest = created
            if newest is None or created > newest:
                newest = created
        if oldest is None or newest is None:
            return None
        # The filters take whole seconds; widen by one on each side.
        start = oldest.astimezone(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        end = newest.astimezone(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
        return start, end

    async def _sweep(self, group: _Group) -> None:
        started = anyio.current_time()
        members = [w for w in group.sweep_members() if not w.inflight and not w.done]
        cost = 0
        try:
            if members:
                cost = await self._walk(group, members)
        except Exception as error:
            action = classify_error(error)
            if action is ErrorAction.STOP_ALL:
                self._stop(error)
                return
            group.sweep_failures += 1
            logger.info("sweep of %s tasks failed: %s", group.kind, error)
            group.next_sweep = anyio.current_time() + self._schedule.delay(group.sweep_failures + 1)
            # What the sweep could not see is checked task by task.
            self._missed(members)
            return
        finally:
            group.sweeping = False
        group.sweep_failures = 0
        group.last_sweep_cost = max(cost, 1)
        group.last_sweep_at = started
        group.next_sweep = anyio.current_time() + self._sweep_interval(group)

    async def _walk(self, group: _Group, members: list[_Watch]) -> int:
        """List the kind's non-final tasks; queue a retrieve for each member that left them.

        Returns the number of list requests spent.
        """
        resource = group.resource
        window = self._window(members) if resource.sweep_time_window else None
        can_skip = (
            window is not None
            and window == group.last_window
            and group.probe_skips < MAX_PROBE_SKIPS
        )
        seen: set[str] = set()
        created: list[datetime] = []
        requests = 0
        for status in resource.sweep_statuses:
            params = {"status": status, "page_limit": str(SWEEP_PAGE_LIMIT)}
            if window is not None:
                params["started_at"] = window[0].strftime(_RFC3339)
                params["ended_at"] = window[1].strftime(_RFC3339)
            number = 1
            while True:
                page = await resource.list_page({**params, "page": str(number)}, self._options)
                requests += 1
                info = page.page_info
                if (
                    can_skip
                    and number == 1
                    and info is not None
                    and info.total_results is not None
                    and group.last_totals.get(status) == info.total_results
                ):
                    # In a closed creation window the count of non-final tasks only
                    # falls; the same count as the last walk saw means nothing moved.
                    group.probe_skips += 1
                    return requests
                items = page.items
                self._read_sweep_page(group, items, seen)
                created.extend(item.created_at for item in items if item.created_at is not None)
                if len(items) < SWEEP_PAGE_LIMIT or (
                    info is not None and info.total_page is not None and number >= info.total_page
                ):
                    break
                number += 1
        group.probe_skips = 0
        for watch in members:
            if watch.task_id in seen:
                watch.misses = 0
        changed = self._missed([w for w in members if w.task_id not in seen])
        self._remember_window(group, created)
        now = anyio.current_time()
        if group.last_sweep_at is not None:
            rate = changed / max(now - group.last_sweep_at, 1e-3)
            group.completion_rate = 0.5 * group.completion_rate + 0.5 * rate
        return requests

    def _remember_window(self, group: _Group, created: list[datetime]) -> None:
        """Record how many non-final tasks this walk saw inside the window the next sweep
        will use, so that sweep can stop after one request if the count has not moved."""
        group.last_totals = {}
        group.last_window = None
        if len(group.resource.sweep_statuses) != 1:
            return  # the count would need one probe per status; walk instead
        window = self._window(w for w in group.sweep_members() if not w.done)
        if window is None:
            return
        start, end = window
        (status,) = group.resource.sweep_statuses
        group.last_totals[status] = sum(1 for c in created if start <= c <= end)
        group.last_window = window

    def _missed(self, watches: list[_Watch]) -> int:
        """Retrieve, one by one, tasks that a sweep did not see among the non-final ones."""
        count = 0
        for watch in watches:
            if watch.done or watch.inflight:
                continue
            watch.misses += 1
            count += 1
            if watch.misses > SWEEP_MISSES_BEFORE_SOLO:
                watch.mode = _Mode.SOLO  # the list never shows it: poll it on its own
            self._schedule_check(watch, 0.0)
        return count

    def _read_sweep_page(self, group: _Group, items: list[Any], seen: set[str]) -> None:
        for item in items:
            item_id = item.id
            watch = group.pending.get(item_id) if item_id else None
            if watch is None:
                continue
            seen.add(watch.task_id)
            if watch.created_at is None:
                watch.created_at = item.created_at
            if item.status is not None and not watch.inflight:
                self._set_status(watch, item.status)

    def _sweep_interval(self, group: _Group) -> float:
        """Space sweeps so their cost per finished task stays near the budget, within the
        poll interval bounds."""
        low, high = self._schedule.initial, self._schedule.maximum
        rate = group.completion_rate
        if rate <= 0:
            # Nothing has finished yet: back off gradually rather than jump to the cap, so
            # the first finished tasks are not left waiting a whole max interval.
            idle = group.idle_interval
            idle = max(low, high / 4) if idle is None else min(high, idle * 1.5)
            group.idle_interval = idle
            return idle
        group.idle_interval = None
        interval = group.last_sweep_cost / (SWEEP_REQUESTS_PER_TASK * rate)
        return min(max(interval, low), high)

    # --- shared rate limit ----------------------------------------------------------------

    def _observe(self, event: ResponseEvent) -> None:
        """Slow the whole poller on a 429 or an exhausted rate-limit window."""
        headers = event.headers
        if event.status == 429:
            hint = parse_retry_hint(headers, 429)
            wait = hint if hint is not None else self._schedule.initial
            self._gate.pause_until(anyio.current_time() + min(wait, 120.0))
            logger.warning("rate limited: pausing all polling for %.2fs", wait)
            return
        remaining = headers.get("X-Ratelimit-Remaining") if headers else None
        if remaining is None:
            return
        try:
            left = int(remaining)
            limit = int(headers.get("X-Ratelimit-Limit") or 0)
        except ValueError:
            return
        if left <= max(1, int(limit * _RATE_LIMIT_FLOOR)):
            hint = parse_retry_hint(
                {"X-Ratelimit-Reset": headers.get("X-Ratelimit-Reset", "")}, 429
            )
            if hint:
                self._gate.pause_until(anyio.current_time() + min(hint, 60.0))
                logger.warning("rate limit nearly exhausted: pausing polling for %.2fs", hint)
