"""What polling a task means: its knobs, the growing interval, and how each error is handled.

Shared by ``resource.wait()`` (one task) and the :class:`~twelvelabs_async.Poller` (many),
through the one algorithm in ``_engine``.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ResponseDecodeError,
)

__all__ = [
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "ErrorAction",
    "PollSchedule",
    "PollerOptions",
]

logger = logging.getLogger("twelvelabs_async")

DEFAULT_POLL_INTERVAL = 2.0
"""Seconds before the second check of a task."""
DEFAULT_MAX_POLL_INTERVAL = 30.0
"""The cap the interval grows to."""
DEFAULT_TASK_TIMEOUT = 6 * 3600.0
"""Default deadline of ``wait()`` and of each task in a poller: six hours. Pass ``None`` for no
deadline at all."""
DEFAULT_TARGET_DELAY = 10.0
"""Default typical (median) delay, in seconds, between a task finishing and its delivery by
a sweeping poller."""
DEFAULT_REQUESTS_PER_TASK = 1.25
"""Default request budget per task of a sweeping poller: one retrieve plus list requests."""
MAX_DEADLINE_GRACE = 5.0
"""The longest a check started at (or running across) a task's deadline is awaited."""
NOT_FOUND_CONFIRMATIONS = 1
"""Extra checks after a first 404 before a task is declared not found (a brand-new task may
not be visible everywhere at once)."""

_warned_statuses: set[tuple[str, str]] = set()


def _seconds(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ValueError(f"{name} is required")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds above 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """Intervals between checks of one task: start short, grow by ``factor`` with +-20 %
    jitter, stop growing at ``maximum``."""

    initial: float = DEFAULT_POLL_INTERVAL
    maximum: float = DEFAULT_MAX_POLL_INTERVAL
    factor: float = 1.5

    def __post_init__(self) -> None:
        _seconds("poll_interval", self.initial, allow_none=False)
        _seconds("max_poll_interval", self.maximum, allow_none=False)
        if self.maximum < self.initial:
            raise ValueError("max_poll_interval must not be smaller than poll_interval")

    def delay(self, checks_done: int) -> float:
        """Seconds to wait after the ``checks_done``-th check."""
        base = min(self.maximum, self.initial * self.factor ** min(max(checks_done - 1, 0), 64))
        return base * random.uniform(0.8, 1.2)

    def first_delay(self) -> float:
        """A random offset for a task's first check, so that a batch does not poll in step."""
        return random.uniform(0.0, self.initial)


@dataclass(frozen=True, slots=True)
class PollerOptions:
    """Every knob of polling, defined once and passed whole (like httpx's ``Timeout``).

    ``client.poller(options=...)``, ``client.wait_all(options=...)`` and the command line take
    it; the same names also work as keyword arguments, which override the options' values.
    ``resource.wait()`` uses ``timeout``, ``poll_interval``, ``max_poll_interval``,
    ``max_retries`` and ``deadline_grace``.

    Attributes:
        timeout: each task's deadline in seconds from when it is added (``None``: none).
        poll_interval: the first delay between two checks of one task (default 2 s)...
        max_poll_interval: ...growing with jitter up to this cap (default 30 s, or
            ``poll_interval`` if that is larger).
        max_concurrency: the most requests in flight at once.
        requests_per_minute: a hard cap on the poller's request rate (retries included).
        max_retries: transport retries of each request (the poller also re-polls).
        sweep: learn about many tasks per request from the list endpoints (3+ tasks of a kind).
        target_delay: for swept tasks, the median delay (seconds) you want between a task
            finishing and its delivery: sweeps are never more than 1.9 times this apart. ``None``
            lets ``requests_per_task`` alone decide. Scaled like the poll intervals.
        requests_per_task: the request budget per task of a sweeping poller (one retrieve
            plus list requests); sweeps run as often as it allows, never less often than
            ``target_delay`` asks. Must be above 1.
        deadline_grace: how long a check started at a task's deadline, or in flight across
            it, is awaited before the task is ``timed_out`` anyway; capped at the timeout.
        remember_delivered: remember delivered ids (compactly, ~12-40 bytes each) so that
            adding one again is a no-op. ``False`` forgets them at once: re-adding watches
            again (for services that run one poller for days).
        pause_on_client_429: also pause this poller when any other request of the same client
            gets a 429 (off by default: the poller obeys only its own requests' 429s).
    """

    timeout: float | None = DEFAULT_TASK_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float | None = None
    max_concurrency: int = 16
    requests_per_minute: float | None = None
    max_retries: int | None = None
    sweep: bool = True
    target_delay: float | None = DEFAULT_TARGET_DELAY
    requests_per_task: float = DEFAULT_REQUESTS_PER_TASK
    deadline_grace: float = MAX_DEADLINE_GRACE
    remember_delivered: bool = True
    pause_on_client_429: bool = False

    def __post_init__(self) -> None:
        _seconds("timeout", self.timeout)
        _seconds("poll_interval", self.poll_interval, allow_none=False)
        _seconds("max_poll_interval", self.max_poll_interval)
        _seconds("target_delay", self.target_delay)
        _seconds("deadline_grace", self.deadline_grace, allow_none=False)
        if self.requests_per_minute is not None:
            _seconds("requests_per_minute", self.requests_per_minute)
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        rpt = self.requests_per_task
        if not isinstance(rpt, (int, float)) or not math.isfinite(rpt) or rpt <= 1.0:
            raise ValueError("requests_per_task must be a finite number above 1")
        self.schedule()  # max_poll_interval >= poll_interval

    def schedule(self) -> PollSchedule:
        """The :class:`PollSchedule` these options describe."""
        maximum = self.max_poll_interval
        if maximum is None:
            maximum = max(DEFAULT_MAX_POLL_INTERVAL, self.poll_interval)
        return PollSchedule(initial=self.poll_interval, maximum=maximum)

    def grace(self) -> float:
        """Seconds a check at or across the deadline may still take."""
        if self.timeout is None:
            return self.deadline_grace
        return min(self.deadline_grace, self.timeout)

    def scaled(self, factor: float) -> PollerOptions:
        """Every duration multiplied by ``factor`` (for tests and benchmarks that compress
        time); counts and budgets unchanged."""

        def scale(value: float | None) -> float | None:
            return None if value is None else value * factor

        return replace(
            self,
            timeout=scale(self.timeout),
            poll_interval=self.poll_interval * factor,
            max_poll_interval=scale(self.max_poll_interval)
            if self.max_poll_interval is not None
            else max(DEFAULT_MAX_POLL_INTERVAL, self.poll_interval) * factor,
            target_delay=scale(self.target_delay),
            deadline_grace=self.deadline_grace * factor,
        )


_UNSET: Any = object()


def options_from(
    options: PollerOptions | None,
    *,
    timeout: float | None = _UNSET,
    **overrides: Any,
) -> PollerOptions:
    """``options`` (or the defaults) with the keyword arguments a caller gave explicitly."""
    base = options if options is not None else PollerOptions()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if timeout is not _UNSET:
        changes["timeout"] = timeout
    return replace(base, **changes) if changes else base


class ErrorAction(Enum):
    """What a polling loop does with an error from one status check."""

    STOP_ALL = "stop_all"
    """401/403: the key is bad; every task would fail the same way."""
    NOT_FOUND = "not_found"
    """404 (or the v1 400 for an unknown id): confirm once, then give the task up."""
    RETRY = "retry"
    """Anything transient: back off and try again until the task's deadline."""
    GIVE_UP = "give_up"
    """Not an API error at all (a bug, an id that cannot be sent): retrying cannot help, so
    the task ends at once and the error goes with it; the other tasks go on."""


def classify_error(error: Exception) -> ErrorAction:
    """How to treat ``error`` raised while checking a task's status."""
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return ErrorAction.STOP_ALL
    if isinstance(error, NotFoundError):
        return ErrorAction.NOT_FOUND
    if isinstance(error, BadRequestError) and error.code == "parameter_invalid":
        return ErrorAction.NOT_FOUND
    if isinstance(error, (APIConnectionError, APIStatusError, ResponseDecodeError)):
        return ErrorAction.RETRY
    return ErrorAction.GIVE_UP


def note_unknown_status(kind: str, status: str | None, known: frozenset[str]) -> None:
    """Log, once per process and value, a status the client does not know (kept polling)."""
    value = status if status is not None else "<missing>"
    if value in known or (kind, value) in _warned_statuses:
        return
    _warned_statuses.add((kind, value))
    logger.warning("unknown %s task status %r: treated as not final", kind, value)
