"""Attempt deadlines: one event-loop timer enforces the read and total limits of every request.

aiohttp's own ``total`` and ``sock_read`` limits cost three timer handles per request (one
created and cancelled, one created, moved and cancelled). The event loop keeps timer handles in
a heap ordered by a Python-level comparison, and cancelled ones linger there: at thousands of
requests per second that bookkeeping is about a sixth of the client's CPU. Here an attempt in
flight is one small record in a set. A single timer, armed for the earliest deadline, wakes up,
cancels the tasks whose attempts overran, and re-arms itself for the next earliest one; with
requests that finish quickly it fires about once per timeout period.

A deadline is enforced the way :func:`asyncio.timeout` does it: the attempt's task is
cancelled, and :meth:`AttemptClock.timed_out` turns that cancellation back into a timeout only if
nobody else cancelled the task too (``Task.uncancel`` counting), so an outer cancellation is
never swallowed.
"""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

__all__ = ["SUPPORTED", "AttemptClock", "Deadlines"]

SUPPORTED = sys.version_info >= (3, 11)
"""Whether this Python can keep deadlines here: ``Task.uncancel()`` (3.11+) is what lets a
deadline cancel an attempt without ever swallowing the caller's own cancellation. Before 3.11
the transport leaves the limits to aiohttp's per-request timers."""

if sys.version_info >= (3, 11):

    def _cancel_requests(task: asyncio.Task[Any]) -> int:
        return task.cancelling()

    def _withdraw_cancel(task: asyncio.Task[Any]) -> int:
        return task.uncancel()

else:  # pragma: no cover - Deadlines is not used before 3.11 (see SUPPORTED)

    def _cancel_requests(task: asyncio.Task[Any]) -> int:
        raise RuntimeError("attempt deadlines need Python 3.11+")

    _withdraw_cancel = _cancel_requests

_SLACK = 0.001
"""Seconds: the loop may run a timer this much early; a deadline that close counts as passed."""


class AttemptClock:
    """The deadlines of one attempt: ``read`` (renewed by :meth:`progress`) and ``total``."""

    __slots__ = (
        "_cancelling",
        "_deadlines",
        "_loop",
        "_read",
        "_task",
        "read_due",
        "reason",
        "total",
        "total_due",
    )

    def __init__(
        self,
        deadlines: Deadlines,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[Any],
        read: float | None,
        total: float | None,
    ) -> None:
        now = loop.time()
        self._deadlines = deadlines
        self._loop = loop
        self._task = task
        self._cancelling = _cancel_requests(task)
        self._read = read
        self.total = total
        self.read_due = math.inf if read is None else now + read
        self.total_due = math.inf if total is None else now + total
        self.reason: str | None = None
        """Why the attempt was cancelled (a sentence for the error message), once it was."""

    @property
    def due(self) -> float:
        """The loop time of the earlier of the two deadlines."""
        return min(self.read_due, self.total_due)

    def progress(self) -> None:
        """Response data arrived: the read limit counts again from now."""
        if self._read is not None:
            self.read_due = self._loop.time() + self._read

    def stop(self) -> None:
        """The attempt ended: stop watching it."""
        self._deadlines._live.discard(self)

    def timed_out(self) -> str | None:
        """Why the attempt timed out, if the ``CancelledError`` that ended it came from its own
        deadline alone; ``None`` means: re-raise it (it is someone else's, or someone else
        cancelled the task as well). Either way this clock's own cancellation is taken back.
        """
        reason, self.reason = self.reason, None
        if reason is None:
            return None
        return reason if _withdraw_cancel(self._task) <= self._cancelling else None

    def settle(self) -> None:
        """The attempt ended without ``CancelledError`` although its deadline passed (the work
        finished, or failed otherwise, before the cancellation landed): take it back."""
        if self.reason is not None:
            self.reason = None
            _withdraw_cancel(self._task)

    def _expire(self, now: float) -> None:
        if self.total_due <= now:
            self.reason = f"the attempt took longer than total={self.total:g} s"
        else:
            self.reason = f"no response data for read={self._read:g} s"
        self._task.cancel()


class Deadlines:
    """The read and total deadlines of every attempt in flight on one event loop, enforced by
    one timer. Used only from inside that loop."""

    __slots__ = ("_live", "_timer", "_timer_due", "_timer_loop")

    def __init__(self) -> None:
        self._live: set[AttemptClock] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = math.inf
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._live)

    def start(self, read: float | None, total: float | None) -> AttemptClock | None:
        """Start watching the current task's attempt; ``None`` when it has no limit to keep."""
        if read is None and total is None:
            return None
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - aiohttp needs a task anyway
            raise RuntimeError("a request must run inside an asyncio task")
        clock = AttemptClock(self, loop, task, read, total)
        self._live.add(clock)
        due = clock.due
        if due < self._timer_due or loop is not self._timer_loop:
            self._arm(loop, due)
        return clock

    def close(self) -> None:
        """Disarm the timer (the client is closing): it would only keep this object in the
        loop's timer heap until the next deadline. Attempts still in flight (on a session
        the caller owns, which closing the client leaves open) keep their deadlines: the
        timer then stays armed and stops re-arming once they are done."""
        if self._live:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_due = math.inf
        self._timer_loop = None

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(due, self._fire, loop)
        self._timer_due = due
        self._timer_loop = loop

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_due = math.inf
        now = loop.time() + _SLACK
        overdue: list[AttemptClock] = []
        earliest = math.inf
        for clock in self._live:
            if clock._loop is not loop:  # left behind by a loop that stopped mid-request
                overdue.append(clock)
                continue
            due = clock.due
            if due <= now:
                overdue.append(clock)
            elif due < earliest:
                earliest = due
        for clock in overdue:
            self._live.discard(clock)
            if clock._loop is loop:
                clock._expire(now)
        if earliest < math.inf:
            self._arm(loop, earliest)
