"""Client configuration: timeouts, retry policy, environment defaults and the testing switch."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import backoff

from ._exceptions import MissingAPIKeyError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_MAX_RETRIES",
    "Limits",
    "RetryPolicy",
    "Timeout",
    "is_testing",
    "set_testing",
]

DEFAULT_BASE_URL = "https://api.twelvelabs.io/v1.3"
API_KEY_ENV_VARS = ("TWELVELABS_API_KEY", "TWELVE_LABS_API_KEY")
BASE_URL_ENV_VAR = "TWELVELABS_BASE_URL"
DEFAULT_MAX_RETRIES = 4
DEFAULT_MAX_CONNECTIONS = 64
# A 4-hour video at 2 s segments, three embedding options, 1024 floats of ~20 JSON bytes each
# is about 450 MB; leave headroom above that.
DEFAULT_MAX_RESPONSE_SIZE = 1 << 30


def _check_seconds(name: str, value: float | None, *, zero_ok: bool = False) -> float | None:
    """``value`` as a float, ``None`` for no limit (``math.inf`` too); NaN, negatives (and zero,
    unless ``zero_ok``) are refused: a NaN limit would never fire, a negative one always."""
    if value is None:
        return None
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a number {bound} (or None), got {value!r}")
    return None if math.isinf(seconds) else seconds


@dataclass(frozen=True, slots=True)
class Timeout:
    """Per-attempt time limits, in seconds (``None`` = no limit).

    ::

        Timeout()                       # 10 s connect, 60 s read, 300 s total, no pool limit
        Timeout(read=5, total=20)       # tighter limits for a latency-sensitive handler
        Timeout(pool=1.0)               # fail fast when every connection is busy

    Args:
        connect: to establish a TCP/TLS connection.
        read: the longest wait for response data: first for the response to begin (counted
            from when the attempt has its connection slot or, for uploads, from when the body is
            sent), then between two chunks of the body.
        total: for one whole attempt, from sending to the last body byte. Time spent waiting for
            a free pooled connection is *not* counted: the client queues for a connection slot
            before the clock starts.
        pool: how long to wait for a free connection slot (``None`` = wait as long as needed).

    NaN and negative values raise ``ValueError``; ``math.inf`` means no limit.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    total: float | None = 300.0
    pool: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total", "pool"):
            value = _check_seconds(name, getattr(self, name), zero_ok=name == "pool")
            object.__setattr__(self, name, value)

    @classmethod
    def coerce(cls, value: Timeout | float | None) -> Timeout:
        """A ``Timeout`` from a number (the same limit for read and total), ``None`` or itself."""
        if value is None:
            return cls(connect=None, read=None, total=None)
        if isinstance(value, Timeout):
            return value
        seconds = _check_seconds("timeout", value)
        if seconds is None:
            return cls(connect=None, read=None, total=None)
        return cls(connect=min(seconds, 10.0), read=seconds, total=seconds)


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection pool and response size limits, passed whole as ``AsyncTwelveLabs(limits=...)``.

    ::

        Limits()                                  # 64 connections, 1 GiB bodies
        Limits(max_connections=8)                 # a small pool (also: 8 requests in flight)
        Limits(max_response_size=64 << 20)        # refuse bodies over 64 MiB

    Args:
        max_connections: connection pool size; also the most requests in flight at once.
        keepalive_expiry: seconds an idle pooled connection is kept open for reuse.
        max_response_size: bodies larger than this raise :class:`ResponseTooLargeError`.
    """

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keepalive_expiry: float = 15.0
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.max_response_size < 0:
            raise ValueError("max_response_size must be 0 or more")
        _check_seconds("keepalive_expiry", self.keepalive_expiry)


MAX_BACKOFF_EXPONENT = 64
"""Retries past this many double the wait no further (``2.0 ** 1024`` would overflow)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait between retries: capped exponential backoff with full jitter.

    Args:
        initial: the cap of the first wait; each retry doubles it.
        max_wait: the largest wait computed by backoff.
        max_retry_after: the largest server-requested wait (``Retry-After``, ``retry-after-ms``,
            ``X-Ratelimit-Reset``) that is obeyed as is; longer hints are shortened to it.

    Every delay it returns is finite, at least 0 and at most ``max(max_wait, max_retry_after)``,
    whatever the server sent.
    """

    initial: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        for name in ("initial", "max_wait", "max_retry_after"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, value)

    @property
    def cap(self) -> float:
        """The longest delay this policy ever returns."""
        return max(self.max_wait, self.max_retry_after)

    def delay(self, attempt: int, server_hint: float | None) -> float:
        """Seconds to sleep before retry number ``attempt + 1`` (zero in testing mode).

        A usable server hint (a finite number; negative counts as 0) wins, shortened to
        ``max_retry_after``; otherwise ``backoff``'s full jitter over the capped exponential.
        """
        if _testing:
            return 0.0
        if server_hint is not None and not math.isnan(server_hint):
            return min(max(server_hint, 0.0), self.max_retry_after)
        exponent = min(max(attempt, 0), MAX_BACKOFF_EXPONENT)
        ceiling = min(self.max_wait, self.initial * (2.0**exponent))
        return min(float(backoff.full_jitter(ceiling)), self.max_wait)


DEFAULT_TIMEOUT = Timeout()
"""10 s to connect, 60 s without response data, 300 s per attempt."""

DEFAULT_LIMITS = Limits()
"""64 connections (and requests in flight), 15 s keep-alive, 1 GiB bodies."""

_testing = False
_testing_max_retries: int | None = None


class _TestingMode:
    """What :func:`set_testing` returns: used as a context manager, it restores the previous
    mode on exit, so a test's setting cannot leak into the next test."""

    __slots__ = ("_previous",)

    def __init__(self, previous: tuple[bool, int | None]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        global _testing, _testing_max_retries
        _testing, _testing_max_retries = self._previous


def set_testing(testing: bool, *, max_retries: int | None = None) -> _TestingMode:
    """Make every retry wait zero seconds (for your own test suites).

    With ``max_retries`` set, it also overrides every client's retry count while testing is on.
    Polling intervals are not affected: pass small ``poll_interval`` values for those. Call it
    plainly to switch the mode, or use ``with set_testing(True): ...`` to restore the previous
    mode when the block ends.
    """
    global _testing, _testing_max_retries
    previous = (_testing, _testing_max_retries)
    _testing = testing
    _testing_max_retries = max_retries if testing else None
    return _TestingMode(previous)


def is_testing() -> bool:
    """Whether :func:`set_testing` switched instant retries on."""
    return _testing


def testing_max_retries() -> int | None:
    """The retry count forced by :func:`set_testing`, if any."""
    return _testing_max_retries


def resolve_api_key(api_key: str | None) -> str:
    """The explicit key, else ``TWELVELABS_API_KEY``, else ``TWELVE_LABS_API_KEY``."""
    if api_key is None:
        for name in API_KEY_ENV_VARS:
            value = os.environ.get(name)
            if value:
                api_key = value
                break
    if not api_key:
        raise MissingAPIKeyError(
            "No TwelveLabs API key: pass api_key=... or set the TWELVELABS_API_KEY "
            "(or TWELVE_LABS_API_KEY) environment variable."
        )
    return api_key


def resolve_base_url(base_url: str | None) -> str:
    """The explicit URL, else ``TWELVELABS_BASE_URL``, else the public v1.3 API."""
    url = base_url or os.environ.get(BASE_URL_ENV_VAR) or DEFAULT_BASE_URL
    return url.rstrip("/")
