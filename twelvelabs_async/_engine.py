"""Polling one task, as a sans-I/O state machine: ``wait()`` and the poller both drive it.

The engine never sleeps and never sends anything. Its driver tells it what happened (a check
answered, failed, was cut off; the task's deadline came while a sweep covered it) together
with the current time, and it answers with the next action: check again at a given time, rely
on the kind's sweeps, deliver a verdict, or stop everything. Because both drivers run this
one algorithm, ``wait()`` and the poller cannot drift apart (in the spirit of httpx's
``Auth.auth_flow``).

Deadline semantics (pinned in the public contract): a task is ``timed_out`` only if a check
made at or after its deadline, or in flight across it, said it was not final. So the engine
never schedules a check later than the deadline (the last check is *at* the deadline), and a
check running at the deadline gets a bounded grace (:meth:`TaskEngine.cutoff`) to answer.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ._polling import NOT_FOUND_CONFIRMATIONS, ErrorAction, PollSchedule, classify_error
from ._types import TaskStatus

__all__ = ["Action", "CheckAt", "Deliver", "RelyOnSweep", "StopAll", "TaskEngine"]

logger = logging.getLogger("twelvelabs_async")


@dataclass(frozen=True, slots=True)
class CheckAt:
    """Check the task's status at ``when`` (the driver's clock)."""

    when: float


@dataclass(frozen=True, slots=True)
class RelyOnSweep:
    """Not final; the kind's next sweep will say when it changes."""


@dataclass(frozen=True, slots=True)
class Deliver:
    """The task is settled: ``status`` is final, ``timed_out`` or ``not_found``.

    ``error`` is the error behind a ``timed_out``/``not_found`` verdict (if any);
    ``raise_error`` says that ``wait()`` should raise ``error`` itself rather than a
    :class:`TaskTimeoutError` (a confirmed 404, an error that is not an API error).
    """

    status: str
    error: BaseException | None = None
    raise_error: bool = False


@dataclass(frozen=True, slots=True)
class StopAll:
    """The key was refused: every task would fail the same way."""

    error: BaseException


Action = CheckAt | RelyOnSweep | Deliver | StopAll
_RELY = RelyOnSweep()


class TaskEngine:
    """The polling state of one task (see the module docstring).

    ``deadline`` is absolute on the driver's clock (``None``: none); ``grace`` is how long a
    check at or across it may run. Subclassed by the poller's per-task record, so a watched
    task costs one object.
    """

    __slots__ = ("checks", "deadline", "errors", "grace", "last_error", "not_found", "schedule")

    def __init__(self, schedule: PollSchedule, deadline: float | None, grace: float) -> None:
        self.schedule = schedule
        self.deadline = deadline
        self.grace = grace
        self.checks = 0
        self.errors = 0
        self.not_found = 0
        self.last_error: BaseException | None = None

    def cutoff(self) -> float:
        """The latest time a check may still be running (``inf`` without a deadline)."""
        return math.inf if self.deadline is None else self.deadline + self.grace

    def past_deadline(self, now: float) -> bool:
        """Whether ``now`` is at or after the deadline."""
        return self.deadline is not None and now >= self.deadline

    def at(self, now: float, delay: float) -> CheckAt:
        """A check ``delay`` from now, but never after the deadline: the last look is there."""
        when = now + delay
        if self.deadline is not None and when > self.deadline:
            when = max(self.deadline, now)
        return CheckAt(when)

    def start(self, now: float, *, spread: bool = False) -> CheckAt:
        """The first check: at once, or (``spread``) at a random point of the first interval
        so that a batch does not poll in step."""
        return self.at(now, self.schedule.first_delay() if spread else 0.0)

    def on_result(
        self, now: float, status: str | None, final: bool, *, sweepable: bool = False
    ) -> Action:
        """A check answered ``status`` (``final``: the full record is in hand)."""
        self.not_found = 0
        self.errors = 0
        self.last_error = None
        if final:
            return Deliver(str(status))
        self.checks += 1
        if self.past_deadline(now):
            # This check ended at or after the deadline and still said "not final".
            return Deliver(TaskStatus.TIMED_OUT)
        if sweepable:
            return _RELY
        return self.at(now, self.schedule.delay(self.checks))

    def on_error(self, now: float, error: Exception) -> Action:
        """A check raised ``error``."""
        action = classify_error(error)
        if action is ErrorAction.STOP_ALL:
            return StopAll(error)
        self.last_error = error
        if action is ErrorAction.GIVE_UP:
            return Deliver(TaskStatus.TIMED_OUT, error, raise_error=True)
        if action is ErrorAction.NOT_FOUND:
            self.not_found += 1
            if self.not_found > NOT_FOUND_CONFIRMATIONS:
                return Deliver(TaskStatus.NOT_FOUND, error, raise_error=True)
            return self._retry(now, min(self.schedule.initial, 1.0))
        self.errors += 1
        return self._retry(now, self.schedule.delay(self.errors + 1))

    def _retry(self, now: float, delay: float) -> Action:
        if not self.past_deadline(now):
            return self.at(now, delay)
        # Past the deadline the check has not answered yet: try again within the grace.
        end = self.cutoff()
        when = now + min(delay, max(end - now, 0.0) / 2)
        if when >= end:
            return Deliver(TaskStatus.TIMED_OUT, self.last_error)
        return CheckAt(when)

    def on_cutoff(self, now: float) -> Deliver:
        """The check was still running at :meth:`cutoff`: time is up."""
        return Deliver(TaskStatus.TIMED_OUT, self.last_error)

    def on_deadline(self, now: float) -> CheckAt:
        """The deadline came while sweeps covered the task: one last check of its own."""
        return CheckAt(now)

    def on_notify(self, now: float) -> CheckAt:
        """Someone (a webhook) said the task changed: check it now."""
        return CheckAt(now)
