"""The aiohttp request handler of the fake server: plumbing only.

It resolves the route on the raw request path (see ``_routes``, so percent-encoded
separators inside an id stay part of the id), counts and logs the request, checks the key
and the rate limit, applies a queued fault or a chaos draw through ONE renderer, and hands
the request to the route's handler: a small callable from one of the per-family modules
(``_tasks``, ``_assets``, ``_batches``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from aiohttp import web

from ._assets import AssetHandlers, AssetStore
from ._batches import BatchHandlers, BatchStore
from ._faults import CHAOS_KINDS, Chaos, Fault, FaultPlan
from ._http import Handler, ParamError, Reply, redact
from ._payloads import Payloads, default_error_body, error_body
from ._routes import (
    PUBLIC_TEMPLATES,
    ROUTES,
    TEMPLATES,
    UNMATCHED,
    normalize_route,
    resolve,
    route_key,
)
from ._store import TaskStore
from ._tasks import TaskHandlers

__all__ = ["FakeApp", "RequestRecord"]

_log = logging.getLogger(__name__)

_JSON: Final = "application/json"
_NOT_JSON_BODY: Final = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
_UNAUTHORIZED: Final = error_body(
    "api_key_invalid",
    "The API key you provided is not valid or has expired. Please check it and try again.",
    nested=False,
)


@dataclass(slots=True, frozen=True)
class RequestRecord:
    """One request seen by the fake server.

    ``time`` is the server clock at arrival; ``route`` is the route key
    (``"GET /v1.3/embed-v2/tasks/{task_id}"``, or ``"<METHOD> <unmatched>"``);
    ``path`` is the raw request target as received (still percent-encoded,
    query included); ``status`` is the HTTP status sent (0 for a dropped
    connection). Request headers (and so the API key) are never recorded.
    """

    time: float
    method: str
    route: str
    path: str
    status: int
    idempotency_key: str | None


class FakeApp:
    """Request handling state of one fake server (owned by ``FakeTwelveLabs``)."""

    def __init__(
        self,
        *,
        store: TaskStore,
        payloads: Payloads,
        api_key: str | None,
        clock: Callable[[], float],
        rate_limit_per_minute: int,
        rate_limit_window: float,
        enforce_rate_limit: bool,
        analyze_full_page_info: bool,
        request_log_size: int | None,
    ) -> None:
        if rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be >= 1")
        if rate_limit_window <= 0:
            raise ValueError("rate_limit_window must be > 0")
        self.store = store
        self.payloads = payloads
        self.api_key = api_key
        self.clock = clock
        self.rate_limit = rate_limit_per_minute
        self.rate_limit_window = rate_limit_window
        self.enforce_rate_limit = enforce_rate_limit
        self.faults = FaultPlan()
        self.chaos: Chaos | None = None
        self.chaos_counts: dict[str, int] = dict.fromkeys(CHAOS_KINDS, 0)
        self.requests_total = 0
        self.route_counts: dict[tuple[str, str], int] = {}
        self.request_log: deque[RequestRecord] = deque(maxlen=request_log_size)
        self._limit_str = str(rate_limit_per_minute)
        self._win_end = 0.0
        self._win_used = 0
        self._route_keys = {(m, t): route_key(m, t) for m, t in ROUTES}
        self.tasks = TaskHandlers(
            store=store,
            payloads=payloads,
            api_key=api_key,
            analyze_full_page_info=analyze_full_page_info,
        )
        """The task routes (Embed v2, Embed v1, analysis)."""
        self.assets = AssetHandlers(AssetStore(clock=clock, new_id=store.new_id), api_key=api_key)
        """The asset, multipart-upload and part-storage routes."""
        self.batches = BatchHandlers(
            BatchStore(clock=clock, new_id=store.new_id), assets=self.assets
        )
        """The analysis-batch routes."""
        self._handlers: dict[tuple[str, str], tuple[Handler, bool]] = {
            **self.tasks.routes(),
            **self.assets.routes(),
            **self.batches.routes(),
        }
        missing = set(ROUTES) - set(self._handlers)
        if missing:  # pragma: no cover - a route without a handler is a bug in the fake
            raise AssertionError(f"routes without a handler: {sorted(missing)}")

    @property
    def idempotency(self) -> dict[str, Reply]:
        """Replies remembered per ``Idempotency-Key`` (analysis creates)."""
        return self.tasks.idempotency

    # ------------------------------------------------------------------ counters

    def request_count(self, route: str | None = None, *, method: str | None = None) -> int:
        """Requests seen for ``route`` (a route spec, see ``normalize_route``) and/or ``method``."""
        if route is None and method is None:
            return self.requests_total
        r_method, r_path = (None, None) if route is None else normalize_route(route)
        if method is not None:
            method = method.upper()
            if r_method is not None and r_method != method:
                return 0
            r_method = method
        total = 0
        for (m, t), n in self.route_counts.items():
            if (r_method is None or m == r_method) and (r_path is None or t == r_path):
                total += n
        if r_path is not None and r_path not in TEMPLATES and r_path != UNMATCHED:
            # A concrete path: count from the request log instead.
            total = sum(
                1
                for rec in self.request_log
                if (r_method is None or rec.method == r_method)
                and rec.path.partition("?")[0] == r_path
            )
        return total

    def reset_counters(self) -> None:
        """Zero the request counters, the request log and the chaos counts."""
        self.requests_total = 0
        self.route_counts.clear()
        self.request_log.clear()
        for k in self.chaos_counts:
            self.chaos_counts[k] = 0

    def reset_rate_limit(self) -> None:
        """Start a fresh rate-limit window with the next request."""
        self._win_end = 0.0
        self._win_used = 0

    # ------------------------------------------------------------------ entry point

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The aiohttp low-level request handler."""
        arrival = self.clock()
        method = request.method
        raw_path = request.raw_path
        resolved = resolve(raw_path)
        if resolved is None:
            template, enc_id = UNMATCHED, None
        else:
            template, enc_id = resolved
        rkey = (method, template)
        self.requests_total += 1
        counts = self.route_counts
        counts[rkey] = counts.get(rkey, 0) + 1
        headers = self._rate_headers() if template not in PUBLIC_TEMPLATES else {}

        fault: Fault | None = self.faults.take(method, template, raw_path) if self.faults else None
        if fault is None and self.chaos is not None:
            chaos_kind = self.chaos.draw(method, template, raw_path)
            if chaos_kind is not None:
                self.chaos_counts[chaos_kind] += 1
                fault = self.chaos.fault(chaos_kind)

        resp: web.StreamResponse
        if fault is None:
            resp, status = await self._normal(request, method, template, enc_id, headers)
        else:
            resp, status = await self._render(request, fault, method, template, enc_id, headers)

        key = request.headers.get("x-api-key")
        path = raw_path
        if key or self.api_key:
            path = redact(raw_path, key, self.api_key)
        self.request_log.append(
            RequestRecord(
                arrival,
                method,
                self._route_keys.get(rkey) or route_key(method, template),
                path,
                status,
                request.headers.get("Idempotency-Key"),
            )
        )
        return resp

    def _rate_headers(self) -> dict[str, str]:
        """Count the request in the fixed rate-limit window (wall clock, starting with the first
        request after the previous window ended) and say so in headers."""
        wall = time.time()
        if wall >= self._win_end:
            self._win_end = wall + self.rate_limit_window
            self._win_used = 0
        self._win_used += 1
        used = self._win_used
        return {
            "X-Api-Version": "1.3",
            "X-Ratelimit-Limit": self._limit_str,
            "X-Ratelimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-Ratelimit-Used": str(used),
            "X-Ratelimit-Reset": str(math.ceil(self._win_end)),
        }

    @staticmethod
    def _response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        if body and "Content-Type" not in headers and "content-type" not in headers:
            headers["Content-Type"] = _JSON
        return web.Response(body=body, status=status, headers=headers)

    def _nested(self, method: str, template: str) -> bool:
        entry = self._handlers.get((method, template))
        return entry is not None and entry[1]

    async def _answer(
        self,
        request: web.BaseRequest,
        method: str,
        template: str,
        enc_id: str | None,
        now: float,
        headers: dict[str, str],
    ) -> Reply:
        public = template in PUBLIC_TEMPLATES
        if not public:
            key = request.headers.get("x-api-key")
            if not key or (
                self.api_key is not None
                and not hmac.compare_digest(
                    key.encode("utf-8", "surrogateescape"), self.api_key.encode("utf-8")
                )
            ):
                return 401, _UNAUTHORIZED
            if self.enforce_rate_limit and self._win_used > self.rate_limit:
                wait = max(1, math.ceil(self._win_end - time.time()))
                headers["Retry-After"] = str(wait)
                return 429, error_body(
                    "too_many_requests",
                    f"You have exceeded the rate limit ({self.rate_limit} requests per "
                    f"{self.rate_limit_window:g} seconds). "
                    f"Please try again later after {wait} seconds.",
                    nested=False,
                )
        entry = self._handlers.get((method, template))
        if entry is None:
            if template == UNMATCHED:
                return 404, error_body(
                    "resource_not_exist", "The requested endpoint does not exist.", nested=False
                )
            headers["Allow"] = ", ".join(m for m, t in ROUTES if t == template)
            return 405, error_body(
                "method_not_allowed", f"Method {method} is not allowed here.", nested=False
            )
        handler, nested = entry
        ident = None if enc_id is None else unquote(enc_id)
        try:
            return await handler(request, ident, now, headers)
        except ParamError as exc:
            return 400, error_body("parameter_invalid", exc.message, nested=nested)
        except Exception as exc:  # a bug in the fake must not look like a network fault
            _log.exception("fake TwelveLabs server failed on %s %s", method, template)
            return 500, error_body(
                "internal_server_error", f"Fake server error: {type(exc).__name__}", nested=nested
            )

    async def _normal(
        self,
        request: web.BaseRequest,
        method: str,
        template: str,
        enc_id: str | None,
        headers: dict[str, str],
    ) -> tuple[web.StreamResponse, int]:
        status, body = await self._answer(request, method, template, enc_id, self.clock(), headers)
        return self._response(status, body, headers), status

    # ------------------------------------------------------------------ faults

    def _error_body(self, method: str, template: str, status: int) -> bytes:
        """The route's own error envelope for ``status`` (401 and 429 are always flat)."""
        nested = status not in (401, 429) and self._nested(method, template)
        return default_error_body(status, nested=nested)

    async def _render(
        self,
        request: web.BaseRequest,
        fault: Fault,
        method: str,
        template: str,
        enc_id: str | None,
        headers: dict[str, str],
    ) -> tuple[web.StreamResponse, int]:
        """The one fault renderer (queued faults and chaos draws alike)."""
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.delay_only:
            return await self._normal(request, method, template, enc_id, headers)
        if fault.drop:
            return self._drop(request), 0
        if fault.truncate:
            if fault.status is None and fault.body is None:
                status, body = await self._answer(
                    request, method, template, enc_id, self.clock(), headers
                )
            else:
                status = fault.status if fault.status is not None else 200
                if fault.body is not None:
                    body = fault.body
                elif status >= 400:
                    body = self._error_body(method, template, status)
                else:
                    body = b'{"data":[],"page_info":{"page":1}}'
            _merge(headers, fault.headers)
            return await self._truncated(request, status, body, headers), status
        if fault.not_json:
            status = fault.status if fault.status is not None else 200
            body = fault.body if fault.body is not None else _NOT_JSON_BODY
            headers["Content-Type"] = "text/html"
            _merge(headers, fault.headers)
            return self._response(status, body, headers), status
        status = fault.status if fault.status is not None else 503
        body = fault.body if fault.body is not None else self._error_body(method, template, status)
        _merge(headers, fault.headers)
        return self._response(status, body, headers), status

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.close()
        # Never sent: writing to the closing transport fails quietly inside aiohttp.
        return web.Response(status=500)

    @staticmethod
    async def _truncated(
        request: web.BaseRequest, status: int, body: bytes, headers: dict[str, str]
    ) -> web.StreamResponse:
        sent = body[: len(body) // 2]
        headers.setdefault("Content-Type", _JSON)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = max(len(body), len(sent) + 1)
        try:
            await resp.prepare(request)
            if sent:
                await resp.write(sent)
        except ConnectionError:
            pass
        transport = request.transport
        if transport is not None:
            transport.close()
        return resp


def _merge(headers: dict[str, str], extra: Mapping[str, str] | None) -> None:
    """Overlay ``extra`` on ``headers``, replacing keys case-insensitively."""
    if not extra:
        return
    for name, value in extra.items():
        lower = name.lower()
        for existing in [k for k in headers if k.lower() == lower]:
            del headers[existing]
        headers[name] = value
