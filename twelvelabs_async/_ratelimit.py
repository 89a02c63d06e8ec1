"""``RequestGate``: one shared pace for every request a poller sends, retries included."""

from __future__ import annotations

import time
from collections import deque

import anyio

__all__ = ["RequestGate"]


class RequestGate:
    """Spaces requests at most ``requests_per_minute`` apart (strictly, no bursts, so that no
    60-second window ever holds more than the limit) and lets anyone pause every request
    until a given time (a 429's ``Retry-After``, an exhausted ``X-Ratelimit-Remaining``).

    Built from anyio primitives: callers queue on a FIFO :class:`anyio.Lock`; the one holding
    it sleeps until its turn, and the next turn counts from the moment it really leaves, so a
    late wake-up (a busy event loop) delays the next request instead of letting two leave back
    to back. A pause that starts during the wait is obeyed too. It also counts what passes.
    """

    def __init__(self, requests_per_minute: float | None = None) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive")
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._lock = anyio.Lock(fast_acquire=True)
        self._next_slot = 0.0
        self._paused_until = 0.0
        self.requests = 0
        self.retries = 0
        self.slowdowns = 0
        self._recent: deque[float] = deque()

    async def __call__(self, attempt: int = 0) -> None:
        """Wait for this request's turn (called by the transport before every attempt)."""
        if self._interval or self._paused_until:
            async with self._lock:
                while True:
                    now = anyio.current_time()
                    slot = max(self._next_slot, self._paused_until)
                    if slot <= now:
                        break
                    await anyio.sleep(slot - now)
                self._next_slot = now + self._interval
        self.requests += 1
        if attempt:
            self.retries += 1
        self._recent.append(time.monotonic())
        if len(self._recent) > 4096:
            self._trim()

    def pause_until(self, when: float) -> None:
        """Hold every request until ``when`` (on the anyio clock); later pauses extend it."""
        if when > self._paused_until:
            self._paused_until = when
            self.slowdowns += 1

    def _trim(self) -> None:
        horizon = time.monotonic() - 60.0
        recent = self._recent
        while recent and recent[0] < horizon:
            recent.popleft()

    @property
    def rate_per_minute(self) -> int:
        """Requests that passed in the last 60 seconds."""
        self._trim()
        return len(self._recent)
