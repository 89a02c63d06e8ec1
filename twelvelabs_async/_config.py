"""Client configuration: timeouts, retry policy, environment defaults and the testing switch."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from ._exceptions import MissingAPIKeyError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_MAX_RETRIES",
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


@dataclass(frozen=True, slots=True)
class Timeout:
    """Per-attempt time limits, in seconds (``None`` = no limit).

    Args:
        connect: to establish a TCP/TLS connection.
        read: the longest wait for response data: first for the response to begin (counted
            from when the attempt has its connection slot or, for uploads, from when the body is
            sent), then between two chunks of the body.
        total: for one whole attempt, from sending to the last body byte. Time spent waiting for
            a free pooled connection is *not* counted: the client queues for a connection slot
            before the clock starts.
        pool: how long to wait for a free connection slot (``None`` = wait as long as needed).
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    total: float | None = 300.0
    pool: float | None = None

    @classmethod
    def coerce(cls, value: Timeout | float | None) -> Timeout:
        """A ``Timeout`` from a number (the same limit for read and total), ``None`` or itself."""
        if value is None:
            return cls(connect=None, read=None, total=None)
        if isinstance(value, Timeout):
            return value
        seconds = float(value)
        if seconds <= 0:
            raise ValueError(f"timeout must be positive, got {value!r}")
        return cls(connect=min(seconds, 10.0), read=seconds, total=seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait between retries: capped exponential backoff with full jitter.

    Args:
        initial: the cap of the first wait; each retry doubles it.
        max_wait: the largest wait computed by backoff.
        max_retry_after: the largest server-requested wait (``Retry-After``, ``retry-after-ms``,
            ``X-Ratelimit-Reset``) that is obeyed as is; longer hints are shortened to it.
    """

    initial: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, server_hint: float | None) -> float:
        """Seconds to sleep before retry number ``attempt + 1`` (zero in testing mode)."""
        if _testing:
            return 0.0
        if server_hint is not None:
            return min(max(server_hint, 0.0), self.max_retry_after)
        ceiling = min(self.max_wait, self.initial * (2.0**attempt))
        return random.uniform(0.0, ceiling)


DEFAULT_TIMEOUT = Timeout()
"""10 s to connect, 60 s without response data, 300 s per attempt."""

_testing = False
_testing_max_retries: int | None = None


def set_testing(testing: bool, *, max_retries: int | None = None) -> None:
    """Make every retry wait zero seconds (for your own test suites).

    With ``max_retries`` set, it also overrides every client's retry count while testing is on.
    Polling intervals are not affected: pass small ``poll_interval`` values for those.
    """
    global _testing, _testing_max_retries
    _testing = testing
    _testing_max_retries = max_retries if testing else None


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
