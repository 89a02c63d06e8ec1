"""What polling one task means: the growing interval, and how each error is handled.

Shared by ``resource.wait()`` (one task) and the :class:`~twelvelabs_async.Poller` (many).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from enum import Enum

from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ResponseDecodeError,
)

__all__ = ["DEFAULT_MAX_POLL_INTERVAL", "DEFAULT_POLL_INTERVAL", "ErrorAction", "PollSchedule"]

logger = logging.getLogger("twelvelabs_async")

DEFAULT_POLL_INTERVAL = 2.0
"""Seconds before the second check of a task."""
DEFAULT_MAX_POLL_INTERVAL = 30.0
"""The cap the interval grows to."""
NOT_FOUND_CONFIRMATIONS = 1
"""Extra checks after a first 404 before a task is declared not found (a brand-new task may
not be visible everywhere at once)."""

_warned_statuses: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """Intervals between checks of one task: start short, grow by ``factor`` with +-20 %
    jitter, stop growing at ``maximum``."""

    initial: float = DEFAULT_POLL_INTERVAL
    maximum: float = DEFAULT_MAX_POLL_INTERVAL
    factor: float = 1.5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0:
            raise ValueError("poll intervals must be positive")
        if self.maximum < self.initial:
            raise ValueError("max_poll_interval must not be smaller than poll_interval")

    def delay(self, checks_done: int) -> float:
        """Seconds to wait after the ``checks_done``-th check."""
        base = min(self.maximum, self.initial * self.factor ** max(checks_done - 1, 0))
        return base * random.uniform(0.8, 1.2)

    def first_delay(self) -> float:
        """A random offset for a task's first check, so that a batch does not poll in step."""
        return random.uniform(0.0, self.initial)


class ErrorAction(Enum):
    """What a polling loop does with an error from one status check."""

    STOP_ALL = "stop_all"
    """401/403: the key is bad; every task would fail the same way."""
    NOT_FOUND = "not_found"
    """404 (or the v1 400 for an unknown id): confirm once, then give the task up."""
    RETRY = "retry"
    """Anything transient: back off and try again until the task's deadline."""


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
    raise error


def note_unknown_status(kind: str, status: str | None, known: frozenset[str]) -> None:
    """Log, once per process and value, a status the client does not know (kept polling)."""
    value = status if status is not None else "<missing>"
    if value in known or (kind, value) in _warned_statuses:
        return
    _warned_statuses.add((kind, value))
    logger.warning("unknown %s task status %r: treated as not final", kind, value)
