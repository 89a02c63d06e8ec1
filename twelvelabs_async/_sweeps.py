"""Sweeps: learning about many tasks of a kind per request, from the list endpoints.

:class:`SweepPlanner` (pure) decides what the next sweep lists and when it runs; :func:`walk`
(the only I/O here) lists the pages. A sweep lists either the kind's *non-final* tasks (a
watched task missing from them has changed) or, when fewer tasks are final than pending, its
*final* tasks (a watched task found there has finished), restricted to the creation-time
window of the watched tasks where the API allows it. Either way a task is delivered only from
its own retrieve, so a stale or shifting list costs at most an extra request.

Spacing: sweeps spend about ``requests_per_task - 1`` list requests per task they find
finished (given how many pages the next sweep will take and how fast tasks finish), but are
never further apart than ``1.9 x target_delay`` nor closer than ``poll_interval``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import anyio

from ._exceptions import AuthenticationError, PermissionDeniedError
from ._polling import PollerOptions

if TYPE_CHECKING:
    from ._transport import RequestOptions
    from .resources._base import TaskResource

__all__ = ["SweepPlan", "SweepPlanner", "SweepReport", "walk"]

SWEEP_PAGE_LIMIT = 50
SWEEP_MIN_TASKS = 3
"""A kind is swept once at least this many of its tasks are watched; fewer are polled alone."""
SWEEP_MISSES_BEFORE_SOLO = 2
"""A task absent from this many pending-side sweeps in a row, yet not final, is polled alone."""
SWEEP_FAILURES_BEFORE_SOLO = 3
"""Failed (or unusable) sweeps in a row after which the kind's tasks are polled one by one."""
SWEEP_SPACING_PER_TARGET = 1.9
"""Sweeps are at most this many ``target_delay`` apart: a task finishing at a random moment
waits half the spacing on average, and its retrieve a little more."""
_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"

Window = tuple[str, str]


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What one sweep lists: ``statuses`` (all final ones if ``final_side``), within
    ``window`` (creation time, RFC 3339) if not ``None``."""

    statuses: tuple[str, ...]
    final_side: bool
    window: Window | None
    known_totals: Mapping[str, int]
    """Per status, the count the last sweep saw in the same window: a status whose count has
    not moved (and can only move one way) is not walked past its first page."""
    max_pages: int


@dataclass(slots=True)
class SweepReport:
    """What a walk saw."""

    items: list[tuple[str, str | None, datetime | None]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)
    """Statuses skipped after page one because their count had not moved."""
    complete: bool = True
    """False if some status's pages could not all be read (a server that ignores ``page``,
    more pages than the plan allowed)."""
    requests: int = 0


def window_of(created: Iterable[datetime | None]) -> Window | None:
    """The creation-time window holding every ``created`` (``None`` while any is unknown)."""
    oldest = newest = None
    for value in created:
        if value is None:
            return None
        if oldest is None or value < oldest:
            oldest = value
        if newest is None or value > newest:
            newest = value
    if oldest is None or newest is None:
        return None
    # The filters take whole seconds; widen by one on each side.
    start = oldest.astimezone(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    end = newest.astimezone(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    return start.strftime(_RFC3339), end.strftime(_RFC3339)


def _pages(count: int) -> int:
    return max(1, math.ceil(count / SWEEP_PAGE_LIMIT))


class SweepPlanner:
    """The sweep state of one kind: what to list next, and when."""

    __slots__ = (
        "_budget",
        "_cap",
        "_final_turns",
        "_floor",
        "_found",
        "_idle",
        "_last_at",
        "_rate",
        "_rest_every",
        "_spent",
        "_tau",
        "failures",
        "final_statuses",
        "pending_statuses",
        "totals",
        "use_window",
    )

    def __init__(
        self,
        options: PollerOptions,
        *,
        pending_statuses: tuple[str, ...],
        final_statuses: tuple[str, ...],
        use_window: bool,
    ) -> None:
        schedule = options.schedule()
        self._floor = schedule.initial
        cap = schedule.maximum
        if options.target_delay is not None:
            cap = min(cap, SWEEP_SPACING_PER_TARGET * options.target_delay)
        self._cap = max(cap, self._floor)
        self._budget = options.requests_per_task - 1.0
        self._tau = 4.0 * self._cap
        self._rate = 0.0
        self._idle: float | None = None
        self._last_at: float | None = None
        self.pending_statuses = pending_statuses
        self.final_statuses = final_statuses
        self.use_window = use_window
        self.totals: dict[tuple[Window | None, str], tuple[int, int]] = {}
        """(window, status) -> (count, number of the sweep that saw it)."""
        self._final_turns = 0
        self._rest_every = 4
        self._spent = 0
        self._found = 0
        self.failures = 0

    # --- what to list ---------------------------------------------------------------------

    def _estimate(self, window: Window | None, status: str, fallback: int) -> int:
        known = self.totals.get((window, status))
        return fallback if known is None else known[0]

    def _cost(self, final: bool, window: Window | None, pending: int, finished: int) -> float:
        if final:
            # The other final statuses (failed, canceled) are listed every 2nd-4th time.
            first, *rest = self.final_statuses
            return (
                _pages(self._estimate(window, first, finished))
                + sum(_pages(self._estimate(window, s, 0)) for s in rest) / self._rest_every
            )
        if len(self.pending_statuses) == 1:
            return _pages(self._estimate(window, self.pending_statuses[0], pending))
        return sum(_pages(self._estimate(window, s, pending)) for s in self.pending_statuses)

    def _final_side(self, window: Window | None, pending: int, finished: int) -> bool:
        # The final side needs a window: without one it would list the account's history.
        return window is not None and self._cost(True, window, pending, finished) < self._cost(
            False, window, pending, finished
        )

    def cost(self, window: Window | None, pending: int, finished: int) -> float:
        """The requests the next sweep is expected to take."""
        if not self.use_window:
            window = None
        return self._cost(self._final_side(window, pending, finished), window, pending, finished)

    def plan(
        self, window: Window | None, pending: int, finished: int, *, newest_member: int = 0
    ) -> SweepPlan:
        """The next sweep for ``pending`` swept tasks (``finished``: tasks of the kind already
        delivered), listing whichever side costs fewer pages. ``newest_member`` is the number
        of the last sweep that began before the newest member joined: counts taken before it
        did not include that member, so they cannot prove that nothing changed."""
        if not self.use_window:
            window = None
        final = self._final_side(window, pending, finished)
        statuses = self.pending_statuses
        if final:
            self._final_turns += 1
            statuses = self.final_statuses
            if self._final_turns % self._rest_every:
                # Most tasks end ``ready``: the other final statuses are listed every 4th
                # final-side sweep, every other one once they grow (a failed task then waits
                # a few sweeps at most; pending-side sweeps see it at once).
                statuses = statuses[:1]
        # Totals only move one way within a closed window: finals grow, a single pending
        # status shrinks. Several pending statuses trade tasks, so their counts prove nothing.
        known: dict[str, int] = {}
        if window is not None and (final or len(statuses) == 1):
            for status in statuses:
                seen = self.totals.get((window, status))
                if seen is not None and seen[1] > newest_member:
                    known[status] = seen[0]
        fallback = finished if final else pending
        expected = sum(self._estimate(window, s, fallback) for s in statuses)
        return SweepPlan(
            statuses=statuses,
            final_side=final,
            window=window,
            known_totals=known,
            max_pages=_pages(expected) * 2 + 10,
        )

    def learned(self, plan: SweepPlan, report: SweepReport, epoch: int) -> None:
        """Remember the counts sweep number ``epoch`` saw, for later plans and probe skips."""
        if any(key[0] != plan.window for key in self.totals):
            self.totals = {}
        rest = set(self.final_statuses[1:]) & set(report.totals) if plan.final_side else set()
        if rest:
            grew = any(
                report.totals[s] != self.totals.get((plan.window, s), (0, 0))[0] for s in rest
            )
            self._rest_every = 2 if grew else min(4, self._rest_every + 1)
        for status, count in report.totals.items():
            self.totals[(plan.window, status)] = (count, epoch)

    # --- when -----------------------------------------------------------------------------

    def next_interval(
        self, now: float, finished: int, spent: int, next_cost: float, pending: int
    ) -> float:
        """Seconds until the next sweep, after one that spent ``spent`` requests and found
        ``finished`` tasks changed, before one expected to take ``next_cost`` requests, with
        ``pending`` tasks still to find."""
        self._spent += spent
        self._found += finished
        if self._last_at is not None:
            dt = max(now - self._last_at, 1e-6)
            weight = 1.0 - math.exp(-dt / self._tau)
            self._rate += weight * (finished / dt - self._rate)
        self._last_at = now
        if self._rate * self._tau < 0.5:
            # Nothing is finishing: back off gradually rather than jump to the cap, so the
            # first finished tasks are not left waiting a whole interval.
            idle = self._idle
            idle = max(self._floor, self._cap / 3) if idle is None else min(self._cap, idle * 1.5)
            self._idle = idle
            return idle
        self._idle = None
        # What is left of the whole budget (every task found or still pending), shared by the
        # pending tasks: sweeps that overspent (idle ones before anything finished, those the
        # target delay forced closer together) are repaid, underspending is caught up.
        allowance = self._budget * (self._found + pending) + 2.0 - self._spent
        budget = min(2 * self._budget, max(0.1 * self._budget, allowance / max(pending, 1)))
        interval = next_cost / (budget * self._rate)
        return min(max(interval, self._floor), self._cap)

    def failed(self) -> float:
        """Seconds until the sweep after a failed one (it backs off)."""
        self.failures += 1
        return min(self._cap, self._floor * 1.5**self.failures)


async def walk(
    resource: TaskResource[Any, Any, Any],
    plan: SweepPlan,
    options: RequestOptions,
    *,
    limiter: anyio.CapacityLimiter | None = None,
    parallel: int = 1,
) -> SweepReport:
    """List every page ``plan`` asks for: page one, then (once ``total_page`` says how many
    there are) up to ``parallel`` pages at a time, each request holding a ``limiter`` token;
    pages are read in order as they arrive. Stops, and says the walk is incomplete, when a
    page repeats the one before it (a server that ignores ``page``) or after ``max_pages``."""
    report = SweepReport()
    base = {"page_limit": str(SWEEP_PAGE_LIMIT)}
    if plan.window is not None:
        base["started_at"], base["ended_at"] = plan.window

    async def fetch(status: str, number: int) -> Any:
        params = {**base, "status": status, "page": str(number)}
        report.requests += 1
        if limiter is None:
            return await resource.list_page(params, options)
        async with limiter:
            return await resource.list_page(params, options)

    for status in plan.statuses:
        page = await fetch(status, 1)
        info = page.page_info
        total = info.total_results if info is not None else None
        if total is not None:
            report.totals[status] = total
            if plan.known_totals.get(status) == total:
                report.unchanged.add(status)
                continue
        previous = _read_page(report, page)
        total_page = info.total_page if info is not None else None
        if len(page.items) < SWEEP_PAGE_LIMIT or (total_page is not None and total_page <= 1):
            continue
        last = plan.max_pages - report.requests + 1
        if total_page is not None:
            last = min(last, total_page)
        reader = _PageReader(report, previous)
        if last >= 2:
            numbers = range(2, last + 1)
            if total_page is not None and parallel > 1:
                await _fetch_pages(fetch, status, numbers, parallel, reader.read)
            else:
                for number in numbers:
                    if not reader.read(await fetch(status, number)):
                        break
        if not reader.ended and (total_page is None or last < total_page):
            report.complete = False  # more pages than the plan allows
    return report


def _read_page(
    report: SweepReport, page: Any, previous: list[str | None] | None = None
) -> list[str | None] | None:
    """Add a page's items to ``report``; ``None`` if it repeats ``previous``."""
    items = page.items
    ids = [item.id for item in items]
    if previous is not None and ids and ids == previous:
        return None
    report.items.extend((item.id, item.status, item.created_at) for item in items)
    return ids


class _PageReader:
    """Reads pages 2, 3, ... in order; says when the walk of one status is over."""

    def __init__(self, report: SweepReport, previous: list[str | None] | None) -> None:
        self.report = report
        self.previous = previous
        self.ended = False

    def read(self, page: Any) -> bool:
        """Take the next page; ``False`` once no further page should be read."""
        ids = _read_page(self.report, page, self.previous)
        if ids is None:
            self.report.complete = False  # the same page again: `page` is being ignored
            self.ended = True
            return False
        self.previous = ids
        if len(page.items) < SWEEP_PAGE_LIMIT:
            self.ended = True
            return False
        return True


async def _fetch_pages(
    fetch: Callable[[str, int], Awaitable[Any]],
    status: str,
    numbers: range,
    parallel: int,
    read: Callable[[Any], bool],
) -> None:
    """Fetch pages ``numbers`` ``parallel`` at a time and hand them to ``read`` in order
    (holding at most ~2 x ``parallel`` early arrivals); stop when ``read`` says so. The first
    error (a refused key first) cancels the rest and is raised as itself, never inside an
    exception group."""
    waiting: dict[int, Any] = {}
    errors: list[Exception] = []
    queue = iter(numbers)
    expected = numbers.start
    moved = anyio.Event()

    async with anyio.create_task_group() as group:

        async def run() -> None:
            nonlocal expected, moved
            for number in queue:
                while number >= expected + 2 * parallel:
                    await moved.wait()  # far ahead of the reader: let it catch up
                try:
                    waiting[number] = await fetch(status, number)
                except Exception as exc:
                    errors.append(exc)
                    group.cancel_scope.cancel()
                    return
                while expected in waiting:
                    if not read(waiting.pop(expected)):
                        group.cancel_scope.cancel()
                        return
                    expected += 1
                    moved.set()
                    moved = anyio.Event()

        for _ in range(min(parallel, len(numbers))):
            group.start_soon(run)
    if errors:
        refused = [e for e in errors if isinstance(e, (AuthenticationError, PermissionDeniedError))]
        raise (refused or errors)[0]
