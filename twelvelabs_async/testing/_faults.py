"""Programmable faults (a FIFO plan) and random chaos for the fake server."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._routes import normalize_route

__all__ = ["CHAOS_KINDS", "Chaos", "Fault", "FaultPlan"]

CHAOS_KINDS: Final = ("5xx", "429", "drop", "truncate", "slow")
"""Keys of :attr:`FakeTwelveLabs.chaos_counts`."""

_5XX: Final = (500, 502, 503, 504)


def _matches(
    method: str | None, path: str | None, req_method: str, template: str, raw_path: str
) -> bool:
    if method is not None and method != req_method:
        return False
    if path is None:
        return True
    if path == template:
        return True
    q = raw_path.find("?")
    return path == (raw_path if q < 0 else raw_path[:q])


@dataclass(slots=True, eq=False)
class Fault:
    """One queued fault (see :meth:`FaultPlan.push` for the meaning of each field)."""

    route: str
    method: str | None
    path: str | None
    remaining: int
    status: int | None = None
    headers: dict[str, str] | None = None
    body: bytes | None = None
    delay: float = 0.0
    truncate: bool = False
    drop: bool = False
    not_json: bool = False

    @property
    def delay_only(self) -> bool:
        """True when the fault only delays and then lets the request be answered normally."""
        return (
            self.status is None
            and self.body is None
            and self.headers is None
            and not (self.truncate or self.drop or self.not_json)
        )


class FaultPlan:
    """FIFO queue of faults that the fake server applies to matching requests.

    Faults are taken in the order they were pushed: each request consumes one
    use of the *first* pending fault whose route matches it.
    """

    __slots__ = ("_faults",)

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def push(
        self,
        route: str = "*",
        *,
        times: int = 1,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        delay: float = 0.0,
        truncate: bool = False,
        drop: bool = False,
        not_json: bool = False,
    ) -> Fault:
        """Make the next ``times`` requests matching ``route`` misbehave.

        ``route`` is ``"*"`` or a route key such as
        ``"GET /v1.3/embed-v2/tasks/{task_id}"`` (see ``normalize_route`` for
        all accepted forms). Effects, applied after sleeping ``delay`` seconds:

        * ``drop``: close the connection without any response (the request is
          not processed);
        * ``truncate``: process the request normally (unless ``status``/``body``
          are given), send headers with a ``Content-Length`` larger than the
          bytes sent, then close the connection;
        * ``not_json``: answer ``status`` (default 200) with a non-JSON body;
        * otherwise answer ``status`` (default 503) with ``headers`` and ``body``
          (default: the route's JSON error envelope for that status). No
          ``Retry-After`` is added unless given in ``headers``;
        * a fault with only ``delay`` set delays, then answers normally.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        if sum((truncate, drop, not_json)) > 1:
            raise ValueError("truncate, drop and not_json are mutually exclusive")
        method, path = normalize_route(route)
        fault = Fault(
            route=route,
            method=method,
            path=path,
            remaining=times,
            status=status,
            headers=dict(headers) if headers is not None else None,
            body=body,
            delay=delay,
            truncate=truncate,
            drop=drop,
            not_json=not_json,
        )
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def pending(self) -> int:
        """Total number of fault uses still pending."""
        return sum(f.remaining for f in self._faults)

    def __bool__(self) -> bool:
        return bool(self._faults)

    def __len__(self) -> int:
        return len(self._faults)

    def take(self, method: str, template: str, raw_path: str) -> Fault | None:
        """Consume one use of the first fault matching the request (server internal)."""
        faults = self._faults
        for i, fault in enumerate(faults):
            if _matches(fault.method, fault.path, method, template, raw_path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del faults[i]
                return fault
        return None


@dataclass(slots=True)
class Chaos:
    """Random faults injected into every matching request (explicit faults win).

    One uniform draw per request picks at most one effect, with the given
    probabilities: a 5xx (500/502/503/504 with a JSON error envelope), a 429
    (flat ``too_many_requests``, ``Retry-After: retry_after`` unless ``None``),
    a dropped connection, a truncated body, or a slow answer (``slow_delay``
    seconds, then the normal response). ``routes`` limits chaos to some route
    specs (``None`` = all routes). Deterministic for a given ``seed``.
    """

    p_5xx: float = 0.10
    p_429: float = 0.05
    p_drop: float = 0.02
    p_truncate: float = 0.01
    p_slow: float = 0.01
    slow_delay: float = 2.0
    retry_after: str | None = "0"
    seed: int = 1
    routes: Collection[str] | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _thresholds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _routes: tuple[tuple[str | None, str | None], ...] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        probs = (self.p_5xx, self.p_429, self.p_drop, self.p_truncate, self.p_slow)
        if any(p < 0 for p in probs) or sum(probs) > 1.0 + 1e-9:
            raise ValueError("chaos probabilities must be >= 0 and sum to at most 1")
        acc = 0.0
        thresholds = []
        for p in probs:
            acc += p
            thresholds.append(acc)
        self._thresholds = tuple(thresholds)
        self._rng = random.Random(self.seed)
        if isinstance(self.routes, str):
            self.routes = (self.routes,)
        self._routes = (
            None if self.routes is None else tuple(normalize_route(r) for r in self.routes)
        )

    def draw(self, method: str, template: str, raw_path: str) -> str | None:
        """Pick the chaos effect for one request (one of :data:`CHAOS_KINDS` or ``None``)."""
        if self._routes is not None and not any(
            _matches(m, p, method, template, raw_path) for m, p in self._routes
        ):
            return None
        r = self._rng.random()
        for kind, threshold in zip(CHAOS_KINDS, self._thresholds, strict=True):
            if r < threshold:
                return kind
        return None

    def pick_5xx(self) -> int:
        """The status of a chaos 5xx answer."""
        return self._rng.choice(_5XX)

    def fault(self, kind: str) -> Fault:
        """The one-off :class:`Fault` that renders chaos effect ``kind`` (so faults and chaos
        share one renderer)."""
        if kind == "5xx":
            return _one_off(status=self.pick_5xx())
        if kind == "429":
            headers = None if self.retry_after is None else {"Retry-After": self.retry_after}
            return _one_off(status=429, headers=headers)
        if kind == "drop":
            return _one_off(drop=True)
        if kind == "truncate":
            return _one_off(truncate=True)
        return _one_off(delay=self.slow_delay)


def _one_off(**effects: Any) -> Fault:
    return Fault(route="chaos", method=None, path=None, remaining=1, **effects)
