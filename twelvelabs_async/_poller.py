"""The concurrent poller: watch many tasks of every kind until each is final.

A thin async driver around the sans-I/O :class:`~twelvelabs_async._scheduler.Scheduler`:
one anyio task group holds a dispatcher, which asks the scheduler for the next due job, and a
fixed pool of workers, which run the jobs (one task's check, one kind's sweep) and report
back. Each task's polling is the same engine ``wait()`` runs. The poller observes only its own
requests (an observer passed with each request), so a 429 elsewhere on the client pauses it
only if ``pause_on_client_429`` says so.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:  # annotations only: importing anyio's streams costs ~10 ms at import time
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._exceptions import ClientClosedError
from ._polling import PollerOptions, note_unknown_status
from ._ratelimit import RequestGate
from ._scheduler import (
    CheckJob,
    Job,
    KindSpec,
    Outcome,
    Scheduler,
    StatusChange,
    SweepJob,
    Watch,
)
from ._sweeps import walk
from ._transport import RequestOptions, ResponseEvent, Transport, parse_retry_hint
from ._types import TaskStatus, WatchKind
from .resources._base import TaskResource

__all__ = ["Outcome", "Poller", "PollerStats", "StatusChange"]

logger = logging.getLogger("twelvelabs_async")

_RATE_LIMIT_FLOOR = 0.02
"""Pause everything when ``X-Ratelimit-Remaining`` drops to this share of the limit."""


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


def kind_spec(resource: TaskResource[Any, Any, Any]) -> KindSpec:
    """What the scheduler needs to know about ``resource``'s statuses and list endpoint."""
    finals = tuple(sorted(resource.final_statuses, key=lambda s: s != TaskStatus.READY))
    return KindSpec(
        pending_statuses=resource.sweep_statuses,
        final_statuses=finals,
        use_window=resource.sweep_time_window,
    )


class Poller:
    """Watches tasks of every kind concurrently until each is final; see ``client.poller()``.

    Use it as an async context manager; leaving the block stops all polling at once.
    ``options`` is the :class:`PollerOptions` in force.
    """

    def __init__(
        self,
        transport: Transport,
        resources: dict[WatchKind, TaskResource[Any, Any, Any]],
        options: PollerOptions | None = None,
        *,
        on_change: Callable[[StatusChange], None] | None = None,
        gate: RequestGate | None = None,
    ) -> None:
        self.options = options if options is not None else PollerOptions()
        self._transport = transport
        self._resources = dict(resources)
        self._seen_kinds: set[WatchKind] = set()
        self._scheduler = Scheduler(self.options, on_change)
        # A gate passed in is shared with other work (a bulk job's creates) under one
        # rate limit; then the options' requests_per_minute is not used.
        self._gate = gate if gate is not None else RequestGate(self.options.requests_per_minute)
        self._own_event: ResponseEvent | None = None
        self._request_options = RequestOptions(
            gate=self._gate, max_retries=self.options.max_retries, observer=self._observe
        )
        self._wakeup = anyio.Event()
        self._outstanding = 0
        self._fatal_raised = False
        self._started = False
        self._closed = False
        self._stack = contextlib.AsyncExitStack()
        # Every request holds a token: a sweep's parallel pages and the checks together never
        # exceed max_concurrency in flight. Created on entry (it needs the running loop).
        self._limiter: anyio.CapacityLimiter
        self._inner_scope: anyio.CancelScope | None = None
        # Created on entry: a poller that is never entered holds no open streams.
        self._results_send: MemoryObjectSendStream[Outcome]
        self._results_recv: MemoryObjectReceiveStream[Outcome]

    def __repr__(self) -> str:
        return f"<Poller watched={self._scheduler.counts['watched']} pending={self._outstanding}>"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Poller:
        if self._started:
            raise RuntimeError("A Poller can be entered only once")
        self._started = True
        self._results_send, self._results_recv = anyio.create_memory_object_stream[Outcome](
            math.inf
        )
        self._limiter = anyio.CapacityLimiter(self.options.max_concurrency)
        self._scheduler.start(anyio.current_time())
        if self.options.pause_on_client_429:
            hooks = self._transport.hooks.on_response
            hooks.append(self._observe_client)
            self._stack.callback(self._remove_hook, hooks)
        self._stack.callback(self._results_recv.close)
        group = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(group.cancel_scope.cancel)  # runs first on exit: stop polling
        group.start_soon(self._run)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        self._closed = True
        # The caller's own exception is not handed to the task group, so it propagates as
        # it is instead of inside an exception group.
        await self._stack.aclose()
        fatal = self._scheduler.stopped
        if fatal is not None and not self._fatal_raised and exc is None:
            self._fatal_raised = True
            raise fatal
        return None

    def _remove_hook(self, hooks: list[Callable[[ResponseEvent], None]]) -> None:
        if self._observe_client in hooks:
            hooks.remove(self._observe_client)

    async def _run(self) -> None:
        try:
            send, recv = anyio.create_memory_object_stream[Job](0)
            async with anyio.create_task_group() as group:
                self._inner_scope = group.cancel_scope
                for _ in range(self.options.max_concurrency):
                    group.start_soon(self._worker, recv.clone())
                recv.close()
                async with send:
                    await self._dispatch(send)
        finally:
            self._results_send.close()

    # --- public API -----------------------------------------------------------------------

    def add(self, resource: TaskResource[Any, Any, Any], task_ids: Iterable[str] | str) -> int:
        """Watch ``task_ids`` of ``resource``'s kind (e.g. ``client.embed.v2.tasks``).

        Can be called before or while iterating. An id already watched or delivered is
        ignored (unless ``remember_delivered=False`` or :meth:`forget_delivered`). Returns how
        many ids were new. Raises ``ValueError`` for an id that is not a non-empty string or
        cannot be encoded (nothing of that call is added then).
        """
        if self._closed:
            raise ClientClosedError("This poller is closed; open a new one.")
        ids = [task_ids] if isinstance(task_ids, str) else task_ids
        kind = resource.kind
        # The resource given first for a kind is the one its checks and sweeps go through.
        if kind not in self._seen_kinds:
            self._seen_kinds.add(kind)
            self._resources[kind] = resource
        used = self._resources[kind]
        now = anyio.current_time() if self._started else 0.0
        added = self._scheduler.add(kind, ids, now, kind_spec(used))
        self._outstanding += added
        if added:
            self._wakeup.set()
        return added

    def notify(self, task_id: str, kind: WatchKind | None = None) -> bool:
        """Check ``task_id`` now (e.g. a webhook said it changed). Returns whether it is
        watched and still pending."""
        now = anyio.current_time() if self._started else 0.0
        found = self._scheduler.notify(task_id, kind, now)
        if found:
            self._wakeup.set()
        return found

    def forget_delivered(self) -> int:
        """Forget the ids delivered so far, so that memory stays flat in a service that runs
        one poller for days; adding one of them again watches it again. Returns how many."""
        return self._scheduler.forget_delivered()

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
                fatal = self._scheduler.stopped
                if fatal is not None and not self._fatal_raised:
                    self._fatal_raised = True
                    raise fatal from None
                return
            self._outstanding -= 1
            yield outcome

    @property
    def stats(self) -> PollerStats:
        """Counts by outcome and status, requests, retries and the current request rate."""
        counts = self._scheduler.counts
        by_status = {k: v for k, v in self._scheduler.pending_by_status.items() if v}
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

    # --- driving the scheduler ------------------------------------------------------------

    def _flush(self) -> None:
        """Hand delivered outcomes to ``as_completed``; stop everything after a fatal error."""
        for outcome in self._scheduler.take_outbox():
            self._results_send.send_nowait(outcome)
        if self._scheduler.stopped is not None and self._inner_scope is not None:
            self._inner_scope.cancel()

    async def _dispatch(self, work: MemoryObjectSendStream[Job]) -> None:
        scheduler = self._scheduler
        while True:
            # A fresh event before asking, so a wake-up during the scan is not lost.
            self._wakeup = anyio.Event()
            job = scheduler.next_job(anyio.current_time())
            self._flush()
            if job is not None:
                await work.send(job)
                continue
            wait = scheduler.next_wakeup() - anyio.current_time()
            with anyio.move_on_after(max(wait, 0.0)):
                await self._wakeup.wait()

    async def _worker(self, work: MemoryObjectReceiveStream[Job]) -> None:
        async with work:
            async for job in work:
                if isinstance(job, CheckJob):
                    await self._check(job.watch)
                else:
                    await self._sweep(job)
                self._flush()
                self._wakeup.set()

    async def _check(self, watch: Watch) -> None:
        resource = self._resources[watch.group.kind]
        options = self._request_options
        checked: Any = None
        task: Any = None
        error: Exception | None = None
        # Bounded by the deadline plus its grace: a check in flight across the deadline may
        # still answer, but not forever.
        with anyio.CancelScope(deadline=watch.cutoff()) as scope:
            try:
                async with self._limiter:
                    checked = await resource.check(watch.task_id, options)
                    if checked.is_final:
                        task = await resource.complete(checked, watch.task_id, options)
                if not checked.is_final:
                    note_unknown_status(resource.kind, checked.status, resource.known_statuses)
            except Exception as exc:  # every failure is this one task's problem
                error = exc
        self._scheduler.check_done(
            watch,
            anyio.current_time(),
            checked=checked,
            task=task,
            error=error,
            cut_off=scope.cancelled_caught,
        )

    async def _sweep(self, job: SweepJob) -> None:
        resource = self._resources[job.group.kind]
        try:
            report = await walk(
                resource,
                job.plan,
                self._request_options,
                limiter=self._limiter,
                parallel=max(1, min(8, self.options.max_concurrency // 2)),
            )
        except Exception as error:
            self._scheduler.sweep_done(job, anyio.current_time(), None, error)
        else:
            self._scheduler.sweep_done(job, anyio.current_time(), report, None)

    # --- shared rate limit ----------------------------------------------------------------

    def _observe_client(self, event: ResponseEvent) -> None:
        """``pause_on_client_429``: a 429 on any other request of the client pauses us too."""
        # Our own requests reach the client's hooks too (right after our observer saw them):
        # they were handled already.
        own = self._own_event
        if event.status == 429 and event is not own and event != own:
            self._observe(event)

    def _observe(self, event: ResponseEvent) -> None:
        """Slow the whole poller on a 429 or an exhausted rate-limit window (called for each
        attempt of the poller's own requests)."""
        self._own_event = event
        headers = event.headers
        if event.status == 429:
            hint = parse_retry_hint(headers, 429)
            wait = hint if hint is not None else self.options.poll_interval
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
