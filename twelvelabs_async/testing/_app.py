"""The aiohttp request handler of the fake server: auth, rate limit, faults, routes.

A single low-level handler resolves routes itself on the raw request path (see
``_routes``), so percent-encoded separators inside a task id stay part of the id.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import unquote

import msgspec
from aiohttp import BodyPartReader, web

from ._faults import CHAOS_KINDS, Chaos, Fault, FaultPlan
from ._payloads import Payloads, default_error_body, error_body, task_video_url
from ._routes import (
    ROUTES,
    T_AN_CANCEL,
    T_AN_LIST,
    T_AN_TASK,
    T_V1_LIST,
    T_V1_STATUS,
    T_V1_TASK,
    T_V2_LIST,
    T_V2_TASK,
    TEMPLATES,
    UNMATCHED,
    normalize_route,
    resolve,
    route_key,
)
from ._store import DEFAULT_CANCEL_MESSAGE, TaskKind, TaskStore

__all__ = ["FakeApp", "RequestRecord"]

_log = logging.getLogger(__name__)
_encode = msgspec.json.encode
_decode = msgspec.json.decode

Reply = tuple[int, bytes]
_Handler = Callable[[web.BaseRequest, "str | None", float], Awaitable[Reply]]

_JSON: Final = "application/json"
_NOT_JSON_BODY: Final = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
_NESTED_TEMPLATES: Final = frozenset({T_V2_TASK, T_AN_TASK, T_AN_CANCEL})
_NESTED_ROUTES: Final = frozenset({("POST", T_V2_LIST), ("POST", T_AN_LIST)})
_MAX_PAGE_LIMIT: Final = 50
_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"\s*([Zz]|[+\- ]\d{2}:?\d{2})?)?$"
)
_V2_INPUT_TYPES: Final = frozenset({"audio", "video", "document", "image"})
_V1_SCOPES: Final = frozenset({"clip", "video"})
_ANALYSIS_MODES: Final = frozenset({"general", "time_based_metadata"})
_CUSTOM_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
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


class _ParamError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_rfc3339_ms(value: str, *, upper: bool) -> int:
    """Parse an RFC 3339 timestamp to epoch ms (ceil for lower bounds, floor for upper)."""
    m = _RFC3339.match(value.strip())
    if m is None:
        raise _ParamError(f"Invalid RFC 3339 date-time: {value!r}")
    year, mon, day, hh, mm, ss, frac, tz = m.groups()
    try:
        dt = datetime(
            int(year),
            int(mon),
            int(day),
            int(hh or 0),
            int(mm or 0),
            int(ss or 0),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise _ParamError(f"Invalid RFC 3339 date-time: {value!r}") from exc
    seconds = Decimal(int(dt.timestamp()))
    if frac:
        try:
            seconds += Decimal("0" + frac)
        except InvalidOperation as exc:  # pragma: no cover - regex guarantees digits
            raise _ParamError(f"Invalid RFC 3339 date-time: {value!r}") from exc
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1  # a '+' may arrive as ' ' from a query string
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        seconds -= sign * offset
    ms = seconds * 1000
    return int(ms.to_integral_value(rounding="ROUND_FLOOR" if upper else "ROUND_CEILING"))


def _redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text


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
        self.analyze_full_page_info = analyze_full_page_info
        self.faults = FaultPlan()
        self.chaos: Chaos | None = None
        self.chaos_counts: dict[str, int] = dict.fromkeys(CHAOS_KINDS, 0)
        self.requests_total = 0
        self.route_counts: dict[tuple[str, str], int] = {}
        self.request_log: deque[RequestRecord] = deque(maxlen=request_log_size)
        self.idempotency: dict[str, Reply] = {}
        self._limit_str = str(rate_limit_per_minute)
        self._win_end = 0.0
        self._win_used = 0
        self._route_keys = {(m, t): route_key(m, t) for m, t in ROUTES}
        self._handlers: dict[tuple[str, str], _Handler] = {
            ("GET", T_V2_LIST): self._v2_list,
            ("POST", T_V2_LIST): self._v2_create,
            ("GET", T_V2_TASK): self._v2_get,
            ("GET", T_V1_LIST): self._v1_list,
            ("POST", T_V1_LIST): self._v1_create,
            ("GET", T_V1_STATUS): self._v1_status,
            ("GET", T_V1_TASK): self._v1_get,
            ("GET", T_AN_LIST): self._analyze_list,
            ("POST", T_AN_LIST): self._analyze_create,
            ("GET", T_AN_TASK): self._analyze_get,
            ("DELETE", T_AN_TASK): self._analyze_delete,
            ("POST", T_AN_CANCEL): self._analyze_cancel,
        }

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

        # Fixed rate-limit window (wall clock, starts with the first request after expiry).
        wall = time.time()
        if wall >= self._win_end:
            self._win_end = wall + self.rate_limit_window
            self._win_used = 0
        self._win_used += 1
        used = self._win_used
        headers = {
            "X-Api-Version": "1.3",
            "X-Ratelimit-Limit": self._limit_str,
            "X-Ratelimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-Ratelimit-Used": str(used),
            "X-Ratelimit-Reset": str(math.ceil(self._win_end)),
        }

        fault: Fault | None = self.faults.take(method, template, raw_path) if self.faults else None
        chaos_kind: str | None = None
        if fault is None and self.chaos is not None:
            chaos_kind = self.chaos.draw(method, template, raw_path)
            if chaos_kind is not None:
                self.chaos_counts[chaos_kind] += 1

        resp: web.StreamResponse
        if fault is None and chaos_kind is None:
            status, body = await self._answer(request, method, template, enc_id, arrival, headers)
            resp = self._response(status, body, headers)
        else:
            resp, status = await self._misbehave(
                request, fault, chaos_kind, method, template, enc_id, headers
            )

        key = request.headers.get("x-api-key")
        path = raw_path
        if key or self.api_key:
            path = _redact(raw_path, key, self.api_key)
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

    @staticmethod
    def _response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        if body and "Content-Type" not in headers and "content-type" not in headers:
            headers["Content-Type"] = _JSON
        return web.Response(body=body, status=status, headers=headers)

    async def _answer(
        self,
        request: web.BaseRequest,
        method: str,
        template: str,
        enc_id: str | None,
        now: float,
        headers: dict[str, str],
    ) -> Reply:
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
        handler = self._handlers.get((method, template))
        if handler is None:
            if template == UNMATCHED:
                return 404, error_body(
                    "resource_not_exist", "The requested endpoint does not exist.", nested=False
                )
            headers["Allow"] = ", ".join(m for m, t in ROUTES if t == template)
            return 405, error_body(
                "method_not_allowed", f"Method {method} is not allowed here.", nested=False
            )
        task_id = None if enc_id is None else unquote(enc_id)
        nested = (method, template) in _NESTED_ROUTES or template in _NESTED_TEMPLATES
        try:
            return await handler(request, task_id, now)
        except _ParamError as exc:
            return 400, error_body("parameter_invalid", exc.message, nested=nested)
        except Exception as exc:  # a bug in the fake must not look like a network fault
            _log.exception("fake TwelveLabs server failed on %s %s", method, template)
            return 500, error_body(
                "internal_server_error", f"Fake server error: {type(exc).__name__}", nested=nested
            )

    # ------------------------------------------------------------------ faults

    def _envelope_nested(self, method: str, template: str, status: int) -> bool:
        if status in (401, 429):
            return False
        return (method, template) in _NESTED_ROUTES or template in _NESTED_TEMPLATES

    async def _misbehave(
        self,
        request: web.BaseRequest,
        fault: Fault | None,
        chaos_kind: str | None,
        method: str,
        template: str,
        enc_id: str | None,
        headers: dict[str, str],
    ) -> tuple[web.StreamResponse, int]:
        if fault is not None:
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
                    body = (
                        fault.body
                        if fault.body is not None
                        else (
                            default_error_body(
                                status, nested=self._envelope_nested(method, template, status)
                            )
                            if status >= 400
                            else b'{"data":[],"page_info":{"page":1}}'
                        )
                    )
                _merge(headers, fault.headers)
                return await self._truncated(request, status, body, headers), status
            if fault.not_json:
                status = fault.status if fault.status is not None else 200
                body = fault.body if fault.body is not None else _NOT_JSON_BODY
                headers["Content-Type"] = "text/html"
                _merge(headers, fault.headers)
                return self._response(status, body, headers), status
            status = fault.status if fault.status is not None else 503
            body = (
                fault.body
                if fault.body is not None
                else default_error_body(
                    status, nested=self._envelope_nested(method, template, status)
                )
            )
            _merge(headers, fault.headers)
            return self._response(status, body, headers), status

        chaos = self.chaos
        assert chaos is not None
        if chaos_kind == "5xx":
            status = chaos.pick_5xx()
            nested = self._envelope_nested(method, template, status)
            body = default_error_body(status, nested=nested)
            return self._response(status, body, headers), status
        if chaos_kind == "429":
            if chaos.retry_after is not None:
                headers["Retry-After"] = chaos.retry_after
            return self._response(429, default_error_body(429, nested=False), headers), 429
        if chaos_kind == "drop":
            return self._drop(request), 0
        if chaos_kind == "truncate":
            status, body = await self._answer(
                request, method, template, enc_id, self.clock(), headers
            )
            return await self._truncated(request, status, body, headers), status
        # "slow"
        await asyncio.sleep(chaos.slow_delay)
        return await self._normal(request, method, template, enc_id, headers)

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

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _paging(q: Mapping[str, str]) -> tuple[int, int]:
        try:
            page = int(q.get("page", "1"))
        except ValueError:
            raise _ParamError("The page parameter must be an integer.") from None
        try:
            limit = int(q.get("page_limit", "10"))
        except ValueError:
            raise _ParamError("The page_limit parameter must be an integer.") from None
        if page < 1:
            raise _ParamError("The page parameter must be greater than or equal to 1.")
        if limit < 1 or limit > _MAX_PAGE_LIMIT:
            raise _ParamError(f"The page_limit parameter must be between 1 and {_MAX_PAGE_LIMIT}.")
        return page, limit

    def _not_found(self, kind: TaskKind, task_id: str | None, *, nested: bool) -> Reply:
        what = {"embed_v2": "embed-v2 tasks", "embed_v1": "embed tasks", "analyze": "analyze tasks"}
        shown = _redact(task_id or "", self.api_key)
        return 404, error_body(
            "resource_not_exist",
            f"The resource {shown!r} does not exist in {what[kind]}.",
            nested=nested,
        )

    async def _read_json(self, request: web.BaseRequest) -> dict[str, Any]:
        raw = await request.read()
        try:
            data = _decode(raw)
        except msgspec.DecodeError:
            raise _ParamError("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise _ParamError("The request body must be a JSON object.")
        return data

    # ------------------------------------------------------------------ embed lists

    def _embed_list(self, kind: TaskKind, request: web.BaseRequest, now: float) -> Reply:
        q = request.query
        page, limit = self._paging(q)
        started = q.get("started_at")
        ended = q.get("ended_at")
        rows = self.store.query(
            kind,
            now,
            started_ms=None if not started else _parse_rfc3339_ms(started, upper=False),
            ended_ms=None if not ended else _parse_rfc3339_ms(ended, upper=True),
            status=q.get("status") or None,
        )
        total = len(rows)
        start = (page - 1) * limit
        item = self.payloads.media_embedding_item_bytes
        shown = [rows[total - 1 - pos] for pos in range(start, min(start + limit, total))]
        data = b",".join([item(rec) for rec in shown])
        self.store.observe(shown, now)
        page_info = _encode(
            {
                "limit_per_page": limit,
                "page": page,
                "total_page": math.ceil(total / limit),
                "total_results": total,
            }
        )
        return 200, b'{"data":[' + data + b'],"page_info":' + page_info + b"}"

    async def _v2_list(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        return self._embed_list("embed_v2", request, now)

    async def _v1_list(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        return self._embed_list("embed_v1", request, now)

    # ------------------------------------------------------------------ embed v2

    async def _v2_get(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        rec = self.store.poll("embed_v2", task_id or "", now)
        if rec is None:
            return self._not_found("embed_v2", task_id, nested=True)
        return 200, self.payloads.v2_task(rec)

    async def _v2_create(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        data = await self._read_json(request)
        missing = [f for f in ("input_type", "model_name") if not data.get(f)]
        if missing:
            return 400, error_body(
                "parameter_not_provided",
                f"The following parameters are required: {', '.join(missing)}.",
                nested=True,
            )
        input_type = data["input_type"]
        model_name = data["model_name"]
        if not isinstance(input_type, str) or input_type not in _V2_INPUT_TYPES:
            raise _ParamError(f"input_type must be one of {sorted(_V2_INPUT_TYPES)}.")
        if not isinstance(model_name, str):
            raise _ParamError("model_name must be a string.")
        media = data.get(input_type)
        media = media if isinstance(media, dict) else {}
        source = media.get("media_source")
        source = source if isinstance(source, dict) else {}
        extra: dict[str, Any] = {"input_type": input_type, "model_name": model_name}
        url = source.get("url")
        asset_id = source.get("asset_id")
        if not isinstance(url, str):
            url = None
        if not isinstance(asset_id, str):
            asset_id = None
        if url is None and asset_id is None and "base64_string" in source:
            extra["video_source"] = {"type": "base64_string"}
        options = media.get("embedding_option")
        if options is not None:
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise _ParamError("embedding_option must be an array of strings.")
            if options:
                extra["embedding_options"] = options
        scopes = media.get("embedding_scope")
        if scopes is not None:
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise _ParamError("embedding_scope must be an array of strings.")
            if scopes:
                extra["embedding_scopes"] = scopes
        seg = media.get("segmentation")
        if isinstance(seg, dict):
            fixed = seg.get("fixed")
            if not isinstance(fixed, dict) and isinstance(seg.get("temporal"), dict):
                fixed = seg["temporal"].get("fixed")
            if isinstance(fixed, dict) and isinstance(fixed.get("duration_sec"), int):
                extra["clip_length"] = fixed["duration_sec"]
        rec = self.store.add("embed_v2", video_url=url, asset_id=asset_id, extra=extra)
        return 202, self.payloads.v2_created(rec)

    # ------------------------------------------------------------------ embed v1

    async def _v1_status(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        rec = self.store.poll("embed_v1", task_id or "", now)
        if rec is None:
            return self._not_found("embed_v1", task_id, nested=False)
        return 200, self.payloads.v1_status(rec)

    async def _v1_get(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        rec = self.store.poll("embed_v1", task_id or "", now)
        if rec is None:
            return self._not_found("embed_v1", task_id, nested=False)
        wanted = request.query.getall("embedding_option", None)
        options: tuple[str, ...] | None = None
        if wanted:
            options = tuple(sorted({o.strip() for v in wanted for o in v.split(",") if o.strip()}))
        return 200, self.payloads.v1_task(rec, options)

    async def _v1_create(self, request: web.BaseRequest, task_id: str | None, now: float) -> Reply:
        if not request.content_type.startswith("multipart/"):
            raise _ParamError("The request must be sent as multipart/form-data.")
        fields: dict[str, list[str]] = {}
        filename: str | None = None
        has_file = False
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    await part.release()
                    continue
                name = part.name or ""
                if name == "video_file":
                    has_file = True
                    filename = part.filename or "video.mp4"
                    await part.release()  # discard the upload
                else:
                    fields.setdefault(name, []).append(await part.text())
        except (ValueError, AssertionError, UnicodeDecodeError) as exc:
            raise _ParamError(f"Malformed multipart/form-data body: {exc}") from None
        model_name = (fields.get("model_name") or [""])[0]
        video_url = (fields.get("video_url") or [""])[0] or None
        if not model_name:
            return 400, error_body(
                "parameter_not_provided", "The model_name parameter is required.", nested=False
            )
        if video_url is None and not has_file:
            return 400, error_body(
                "parameter_not_provided",
                "Either the video_url or the video_file parameter is required.",
                nested=False,
            )
        extra: dict[str, Any] = {"model_name": model_name}
        if video_url is None:
            extra["input_filename"] = filename
            extra["video_source"] = {"type": "file"}
        clip = fields.get("video_clip_length")
        if clip:
            try:
                clip_len = float(clip[0])
            except ValueError:
                raise _ParamError("video_clip_length must be a number.") from None
            if not 2 <= clip_len <= 10:
                raise _ParamError("video_clip_length must be between 2 and 10 seconds.")
            extra["clip_length"] = int(clip_len) if clip_len.is_integer() else clip_len
        offsets: list[float] = []
        for name in ("video_start_offset_sec", "video_end_offset_sec"):
            vals = fields.get(name)
            if vals:
                try:
                    offsets.append(float(vals[0]))
                except ValueError:
                    raise _ParamError(f"{name} must be a number.") from None
        if len(offsets) == 2 and offsets[1] <= offsets[0]:
            raise _ParamError("video_end_offset_sec must be greater than video_start_offset_sec.")
        scopes = fields.get("video_embedding_scope")
        if scopes:
            bad = [s for s in scopes if s not in _V1_SCOPES]
            if bad:
                raise _ParamError(f"Invalid video_embedding_scope value(s): {', '.join(bad)}.")
            extra["embedding_scopes"] = list(dict.fromkeys(scopes))
        rec = self.store.add("embed_v1", video_url=video_url, extra=extra)
        return 200, _encode({"_id": rec.id})

    # ------------------------------------------------------------------ analyze

    async def _analyze_list(
        self, request: web.BaseRequest, task_id: str | None, now: float
    ) -> Reply:
        q = request.query
        page, limit = self._paging(q)
        rows = self.store.query(
            "analyze",
            now,
            status=q.get("status") or None,
            video_url=q.get("video_url") or None,
            asset_id=q.get("asset_id") or None,
            analysis_mode=q.get("analysis_mode") or None,
            url_of=task_video_url,
        )
        total = len(rows)
        start = (page - 1) * limit
        build = self.payloads.analyze_dict
        shown = [rows[total - 1 - pos] for pos in range(start, min(start + limit, total))]
        data = [build(rec, list_item=True) for rec in shown]
        self.store.observe(shown, now)
        page_info: dict[str, int] = {"page": page}
        if self.analyze_full_page_info:
            page_info = {
                "limit_per_page": limit,
                "page": page,
                "total_page": math.ceil(total / limit),
                "total_results": total,
            }
        return 200, _encode({"data": data, "page_info": page_info})

    async def _analyze_get(
        self, request: web.BaseRequest, task_id: str | None, now: float
    ) -> Reply:
        rec = self.store.poll("analyze", task_id or "", now)
        if rec is None:
            return self._not_found("analyze", task_id, nested=True)
        return 200, self.payloads.analyze_task(rec)

    async def _analyze_delete(
        self, request: web.BaseRequest, task_id: str | None, now: float
    ) -> Reply:
        rec = self.store.get("analyze", task_id or "")
        if rec is None:
            return self._not_found("analyze", task_id, nested=True)
        self.store.advance(rec, now)
        if rec.final_at is None:
            return 409, error_body(
                "task_in_progress",
                "The analysis task is still being processed and cannot be deleted.",
                nested=True,
            )
        self.store.delete("analyze", rec.id)
        return 200, b""

    async def _analyze_cancel(
        self, request: web.BaseRequest, task_id: str | None, now: float
    ) -> Reply:
        rec = self.store.get("analyze", task_id or "")
        if rec is None:
            return self._not_found("analyze", task_id, nested=True)
        self.store.advance(rec, now)
        if rec.status != "canceled":
            if rec.final_at is not None:
                return 409, error_body(
                    "task_cannot_be_canceled",
                    f"The analysis task has already finished with status {rec.status!r}.",
                    nested=True,
                )
            self.store.set_status(
                rec, "canceled", error_message=DEFAULT_CANCEL_MESSAGE, error_code="user_canceled"
            )
        return 200, _encode({"task_id": rec.id, "status": "canceled"})

    async def _analyze_create(
        self, request: web.BaseRequest, task_id: str | None, now: float
    ) -> Reply:
        idem = request.headers.get("Idempotency-Key")
        if idem:
            previous = self.idempotency.get(idem)
            if previous is not None:
                return previous
        data = await self._read_json(request)
        video = data.get("video")
        image = data.get("image")
        if video is None and image is None:
            return 400, error_body(
                "parameter_not_provided", "Either video or image is required.", nested=True
            )
        if video is not None and image is not None:
            raise _ParamError("video and image are mutually exclusive.")
        custom_id = data.get("custom_id")
        if custom_id is not None and (
            not isinstance(custom_id, str) or _CUSTOM_ID.match(custom_id) is None
        ):
            raise _ParamError("custom_id must be 1-64 characters of letters, digits, '_' or '-'.")
        mode = data.get("analysis_mode", "general")
        if mode not in _ANALYSIS_MODES:
            raise _ParamError(f"analysis_mode must be one of {sorted(_ANALYSIS_MODES)}.")
        extra: dict[str, Any] = {"model_name": data.get("model_name", "pegasus1.5")}
        url: str | None = None
        asset_id: str | None = None
        if video is not None:
            if not isinstance(video, dict):
                raise _ParamError("video must be an object.")
            if isinstance(video.get("url"), str):
                url = video["url"]
            elif isinstance(video.get("asset_id"), str):
                asset_id = video["asset_id"]
            elif "base64_string" in video:
                extra["video_source"] = {"type": "base64_string"}
            else:
                raise _ParamError("video must contain one of url, asset_id or base64_string.")
        else:
            if not isinstance(image, list) or not 1 <= len(image) <= 20:
                raise _ParamError("image must be an array of 1 to 20 images.")
            extra["video_source"] = None
        params: dict[str, Any] = {"analysis_mode": mode}
        for name in ("prompt", "prompt_v2", "response_format"):
            if data.get(name) is not None:
                params[name] = data[name]
        params["temperature"] = data.get("temperature", 0.2)
        params["max_tokens"] = data.get(
            "max_tokens", 32768 if mode == "time_based_metadata" else 4096
        )
        for name in ("min_segment_duration", "max_segment_duration", "start_time", "end_time"):
            if data.get(name) is not None:
                params[name] = data[name]
        extra["request_params"] = params
        rec = self.store.add(
            "analyze",
            video_url=url,
            asset_id=asset_id,
            analysis_mode=mode,
            custom_id=custom_id,
            extra=extra,
        )
        reply: Reply = (202, _encode({"task_id": rec.id, "status": rec.status}))
        if idem:
            self.idempotency[idem] = reply
        return reply


def _merge(headers: dict[str, str], extra: Mapping[str, str] | None) -> None:
    """Overlay ``extra`` on ``headers``, replacing keys case-insensitively."""
    if not extra:
        return
    for name, value in extra.items():
        lower = name.lower()
        for existing in [k for k in headers if k.lower() == lower]:
            del headers[existing]
        headers[name] = value
