"""HTTP transport: one aiohttp session, authentication, timeouts, retries and error mapping.

The transport speaks HTTP and JSON envelopes only; it knows nothing of tasks. It returns the raw
body bytes of a successful response so that the layer above decodes each body exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import io
import ipaddress
import logging
import math
import os
import re
import time
import uuid
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import timezone
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import msgspec

from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_RETRIES,
    Limits,
    RetryPolicy,
    Timeout,
    testing_max_retries,
)
from ._deadlines import SUPPORTED as SHARED_DEADLINES
from ._deadlines import AttemptClock, Deadlines
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIProtocolError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    ResponseDecodeError,
    ResponseTooLargeError,
    status_error_class,
)
from ._version import __version__

if TYPE_CHECKING:
    # aiohttp (with yarl and multidict) is most of the import cost; it is imported on first
    # use instead, inside the event loop, so `import twelvelabs_async` stays cheap.
    import aiohttp
    from yarl import URL

__all__ = [
    "EventHooks",
    "FormFile",
    "RequestOptions",
    "Response",
    "ResponseEvent",
    "StreamedBody",
    "Transport",
]

logger = logging.getLogger("twelvelabs_async")

USER_AGENT = f"twelvelabs-async/{__version__}"
FINAL_SERVER_STATUSES = frozenset({501, 505})
"""5xx statuses that say the request can never work (Not Implemented, HTTP Version Not
Supported): not retried. Every other 5xx, 408 and 429 are."""
PROTECTED_HEADERS = frozenset(
    {"x-api-key", "content-type", "content-length", "transfer-encoding", "host"}
)
"""Headers a caller's extra headers may not set: the key, and the framing aiohttp computes."""
_ERROR_BODY_LIMIT = 64 * 1024
_TIMEOUT_CACHE_SIZE = 32
_json_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class FormFile:
    """A file part of a form with its own file name: bytes, a path (opened for each attempt), a
    binary file object (rewound for each attempt) or an async byte stream (sent once: a call
    that carries one is not retried once it may have been read)."""

    source: bytes | os.PathLike[str] | IO[bytes] | AsyncIterable[bytes]
    filename: str
    content_type: str = "application/octet-stream"


FormValue = str | bytes | os.PathLike[str] | IO[bytes] | FormFile
QueryValue = str | int | float


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-call overrides. ``None`` means "use the client's setting".

    ``gate(attempt)`` is awaited before every attempt (0 for the first try, then 1, 2, ...),
    once the attempt holds its connection slot, right before the request is sent; the poller
    uses it to hold all of its requests to one shared rate and to count them.

    ``observer(event)`` is called after every attempt of this one request (success, error
    status, connection error, timeout) with the same :class:`ResponseEvent` the client's
    ``on_response`` hooks get.

    ``extra_headers``, ``extra_query`` and ``extra_body`` are merged into the request (the
    official SDK's ``additional_headers``, ``additional_query_parameters`` and
    ``additional_body_parameters``); they win over the client's own values, except for the
    headers in ``PROTECTED_HEADERS``, which raise ``ValueError``.
    """

    timeout: Timeout | None = None
    max_retries: int | None = None
    gate: Callable[[int], Awaitable[None]] | None = None
    observer: Callable[[ResponseEvent], None] | None = None
    extra_headers: Mapping[str, str] | None = None
    extra_query: Mapping[str, QueryValue | Sequence[QueryValue]] | None = None
    extra_body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        for name, value in (self.extra_headers or {}).items():
            if name.lower() in PROTECTED_HEADERS:
                raise ValueError(
                    f"additional header {name!r} may not be set per request: the client "
                    "sets the API key and the body framing itself"
                )
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise ValueError(f"additional header {name!r} must be a one-line string")


_NO_OPTIONS = RequestOptions()


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """What the ``on_response`` hooks (and a request's ``observer``) are told about each attempt.

    ``status`` is ``None`` when no response arrived (``error`` then says why); ``error`` is the
    error the attempt ended with (``None`` on success). ``elapsed`` is the attempt's own time in
    seconds, from sending to its end, for failures too.
    """

    method: str
    path: str
    status: int | None
    headers: Mapping[str, str]
    elapsed: float
    attempt: int
    error: BaseException | None = None


@dataclass(slots=True)
class EventHooks:
    """Callbacks for users' metrics: ``on_request(method, path, attempt)`` before each attempt
    and ``on_response(ResponseEvent)`` after it. Hooks must be quick and must not raise."""

    on_request: list[Callable[[str, str, int], None]] = field(default_factory=list)
    on_response: list[Callable[[ResponseEvent], None]] = field(default_factory=list)


class Response:
    """A successful response: status, headers and the raw body, read in full."""

    __slots__ = ("body", "headers", "method", "path", "raw", "retries", "status")

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        retries: int,
        raw: aiohttp.ClientResponse | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers
        self.body = body
        self.retries = retries
        self.raw = raw
        """The open response of a streamed call (see :meth:`Transport.stream`), else ``None``."""

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.method} {self.path} ({len(self.body)} bytes)>"


class _Call:
    """The state of one logical request across its attempts."""

    __slots__ = (
        "attempt",
        "content_type",
        "form",
        "gate",
        "headers",
        "idempotent",
        "json_body",
        "max_retries",
        "maybe_applied",
        "method",
        "observer",
        "params",
        "path",
        "replayable",
        "sent",
        "sliced",
        "stream",
        "timeout",
        "url",
    )

    def __init__(
        self,
        method: str,
        path: str,
        url: URL,
        params: Any,
        json_body: bytes | memoryview | None,
        form: list[tuple[str, FormValue]] | None,
        headers: Mapping[str, str],
        timeout: Timeout,
        max_retries: int,
        idempotent: bool,
        options: RequestOptions,
        *,
        stream: bool = False,
        sliced: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.url = url
        self.params = params
        self.json_body = json_body
        self.form = form
        self.headers = headers
        self.timeout = timeout
        self.max_retries = max_retries
        self.idempotent = idempotent
        self.gate = options.gate
        self.observer = options.observer
        self.stream = stream
        """The body is handed to the caller unread (see :meth:`Transport.stream`)."""
        self.sliced = sliced
        """The body is written slice by slice (large raw bodies, see ``request_external``)."""
        self.attempt = 0
        self.replayable = form is None or all(_replayable(value) for _, value in form)
        """Whether the body can be sent again (a non-seekable stream is read once)."""
        self.sent = False
        """Whether the last attempt may have reached the server."""
        self.maybe_applied = False
        """Whether an earlier attempt may have been carried out without its answer arriving."""


def _replayable(value: FormValue) -> bool:
    if isinstance(value, FormFile):
        value = value.source  # type: ignore[assignment]
        if not isinstance(value, (str, bytes, os.PathLike, io.IOBase)):
            return False  # an async stream is read once
    return isinstance(value, (str, bytes, os.PathLike)) or value.seekable()


# --- the retry decision: pure, one screen ----------------------------------------------------


def retry_delay(call: _Call, error: APIError, policy: RetryPolicy) -> float:
    """Seconds to wait before retrying ``call`` after ``error``, or raise ``error``.

    * no retries left, or an error no retry can fix (a 4xx, 501, an oversized body): raise;
    * a request that may have reached the server (any status, a dropped or timed-out
      connection) is retried only if it is idempotent (GET, DELETE, or a keyed create), except
      a 429, which says the request was not carried out;
    * a body that cannot be sent again (a non-seekable stream) after it may have been read: raise.

    The wait is the server's hint (``Retry-After`` and friends) or jittered backoff, capped.
    """
    if call.attempt >= call.max_retries:
        raise error
    hint: float | None = None
    if isinstance(error, APIStatusError):
        status = error.status_code
        transient = status in (408, 429) or (status >= 500 and status not in FINAL_SERVER_STATUSES)
        if not transient or not (call.idempotent or status == 429):
            raise error
        hint = parse_retry_hint(error.headers, status)
    elif not isinstance(error, APIConnectionError) or (call.sent and not call.idempotent):
        raise error
    if call.sent and not call.replayable:
        raise error
    return policy.delay(call.attempt, hint)


def _log_retry(call: _Call, error: APIError, delay: float) -> None:
    logger.warning(
        "retrying after %s in %.2fs (retry %d): %s",
        type(error).__name__,
        delay,
        call.attempt + 1,
        error,
    )


_UNRESERVED_SEGMENT = re.compile(r"[A-Za-z0-9_~-]+")
"""Segments made only of these characters are their own encoding."""


def encode_path_segment(value: str) -> str:
    """Percent-encode ``value`` as exactly one URL path segment.

    Everything but unreserved characters is escaped, and so are dots, so that ``/``, ``?``,
    ``#``, ``..`` or ``%2F`` tricks can never reach another path.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"task id must be a non-empty string, got {value!r}")
    if _UNRESERVED_SEGMENT.fullmatch(value):
        return value  # nothing to escape (every real task id): skip the per-byte loop
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "-_~"):
            out.append(char)
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _seconds(value: str, scale: float = 1.0, offset: float = 0.0) -> float | None:
    """A finite, non-negative number of seconds from a header value, else ``None``."""
    try:
        seconds = float(value) / scale - offset
    except (ValueError, OverflowError):
        return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_HINT)


_MAX_HINT = 365 * 86400.0
"""Hints are clamped to a year before the policy's own cap applies: always a finite float."""


def parse_retry_hint(headers: Mapping[str, str], status: int) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, ``Retry-After`` (seconds or an
    HTTP date), or for a 429 the time until ``X-Ratelimit-Reset``.

    Always ``None`` or a finite number >= 0: NaN, garbage and dates that cannot be read are
    no hint; ``inf``, huge and negative values are clamped.
    """
    value = headers.get("retry-after-ms")
    if value and (hint := _seconds(value, scale=1000.0)) is not None:
        return hint
    value = headers.get("Retry-After")
    if value:
        hint = _seconds(value)
        if hint is not None:
            return hint
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, source zone unknown"
                when = when.replace(tzinfo=timezone.utc)
            try:
                return min(max(when.timestamp() - time.time(), 0.0), _MAX_HINT)
            except (OverflowError, OSError, ValueError):
                return None
    if status == 429:
        value = headers.get("X-Ratelimit-Reset")
        if value:
            return _seconds(value, offset=time.time())
    return None


def parse_error_body(body: bytes) -> tuple[str | None, str | None, Any]:
    """``(code, message, decoded)`` from a flat ``{code, message}`` or nested ``{"error": {...}}``
    envelope; ``(None, None, None)`` for an empty or non-JSON body."""
    if not body.strip():
        return None, None, None
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: hostile deep nesting
        return None, None, None
    if not isinstance(decoded, dict):
        return None, None, decoded
    inner = decoded.get("error")
    source = inner if isinstance(inner, dict) else decoded
    code = source.get("code")
    message = source.get("message")
    if message is None and isinstance(inner, str):
        message = inner
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
        decoded,
    )


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    # Only the name itself: "api.localhost" is resolved by DNS like any other name on most
    # systems, so it may well be a remote host.
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Transport:
    """Sends requests for one client over one lazily created ``aiohttp.ClientSession``.

    The pipeline, one concern per function: :meth:`request` prepares the call and runs the
    retry loop; :func:`retry_delay` decides, without side effects, whether and when to retry;
    :meth:`_attempt` makes one try and raises only our own errors, every aiohttp exception
    being translated by :meth:`_map_error`.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: Timeout,
        max_retries: int = DEFAULT_MAX_RETRIES,
        limits: Limits = DEFAULT_LIMITS,
        session: aiohttp.ClientSession | None = None,
        retry_policy: RetryPolicy | None = None,
        hooks: EventHooks | None = None,
        allow_insecure_http: bool = False,
        default_headers: Mapping[str, str] | None = None,
        trust_env: bool = True,
        proxy: str | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        from yarl import URL

        self._base = URL(base_url)
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
        if (
            self._base.scheme == "http"
            and not _is_loopback(self._base.host)
            and not allow_insecure_http
        ):
            raise ValueError(
                "Refusing to send the API key over plain http:// to a non-loopback host "
                f"({self._base.host}); use https:// or pass allow_insecure_http=True."
            )
        self._base_path = self._base.raw_path.rstrip("/")
        self.base_url = str(self._base)
        self._origin = self._base.origin()
        # The key lives only inside this header dict (never printed) and in _api_key, used
        # only to scrub it from foreign error texts.
        self._api_key = api_key
        self._headers = {
            **(dict(default_headers) if default_headers else {}),
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "x-api-key": api_key,
        }
        self.trust_env = trust_env
        self._owns_session = session is None
        self._proxy, proxy_authorization = self._resolve_proxy(proxy)
        self._proxy_headers: dict[str, str] | None = None
        if proxy_authorization is not None:
            # aiohttp sends proxy_headers only on an https tunnel's CONNECT; a plain http
            # request carries the proxy's credentials itself.
            if self._base.scheme == "https":
                self._proxy_headers = {"Proxy-Authorization": proxy_authorization}
            else:
                self._headers["Proxy-Authorization"] = proxy_authorization
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self.timeout = timeout
        self.max_retries = max_retries
        self.limits = limits
        self.max_connections = limits.max_connections
        self.max_response_size = limits.max_response_size
        self.retry_policy = retry_policy or RetryPolicy()
        self.hooks = hooks or EventHooks()
        self._session = session
        self._closed = False
        self._slots: anyio.Semaphore | None = None
        self._client_timeouts: dict[tuple[Timeout, bool], aiohttp.ClientTimeout] = {}
        self._deadlines: Deadlines | None = Deadlines() if SHARED_DEADLINES else None

    def __repr__(self) -> str:
        return f"<Transport {self.base_url} closed={self._closed}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called (or the user's session was closed)."""
        return self._closed or (self._session is not None and self._session.closed)

    def check_open(self) -> None:
        """Raise :class:`ClientClosedError` if the client or its given session is closed."""
        if self._closed:
            raise ClientClosedError("The TwelveLabs client is closed; create a new one.")
        if self._session is not None and self._session.closed:
            raise ClientClosedError("The aiohttp session given to the TwelveLabs client is closed.")

    def _ensure_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._closed:
            raise ClientClosedError("The TwelveLabs client is closed; create a new one.")
        session = self._session
        slots = self.max_connections
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=slots,
                limit_per_host=0,
                keepalive_timeout=self.limits.keepalive_expiry,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                raise_for_status=False,
                # The proxy is resolved once below: aiohttp's own trust_env looks the
                # environment up again, in a worker thread, for every request.
                trust_env=False,
            )
            # aiohttp silently re-sends an idempotent request once when a reused keep-alive
            # connection drops; that hidden attempt would escape max_retries (and its count).
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
        elif session.closed:
            raise ClientClosedError("The aiohttp session given to the TwelveLabs client is closed.")
        else:
            # A given session's own pool may be smaller than ours: a slot must mean a
            # connection, or requests would pass the rate gate and then queue in aiohttp.
            limit = getattr(session.connector, "limit", 0)
            if limit:
                slots = min(slots, limit)
        if self._slots is None:
            self._slots = anyio.Semaphore(slots, fast_acquire=True)
        return session

    def _resolve_proxy(self, explicit: str | None) -> tuple[URL | None, str | None]:
        """The proxy for the base URL: the explicit one, else (with ``trust_env``, for our own
        session) the ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` environment unless
        ``NO_PROXY`` covers the host, and the ``Proxy-Authorization`` value for credentials in
        its URL. Read once, when the client is created. Loopback is never proxied from the
        environment. A session the caller gave follows its own ``trust_env``."""
        import urllib.request

        from yarl import URL

        url = explicit
        host = self._base.host or ""
        if url is None and self.trust_env and self._owns_session and not _is_loopback(host):
            proxies = urllib.request.getproxies()
            url = proxies.get(self._base.scheme) or proxies.get("all")
            if url and urllib.request.proxy_bypass(host):
                url = None
        if not url:
            return None, None
        proxy = URL(url if "://" in url else f"http://{url}")
        if proxy.user is None:
            return proxy, None
        # Credentials in the URL go in the header (aiohttp's BasicAuth is deprecated).
        token = base64.b64encode(f"{proxy.user}:{proxy.password or ''}".encode()).decode()
        return proxy.with_user(None), f"Basic {token}"

    async def aclose(self) -> None:
        """Close the session we created (a session passed in by the user is left open, and
        requests still running on it keep their limits)."""
        if self._closed:
            return
        self._closed = True
        if self._deadlines is not None:
            self._deadlines.close()
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    def url_for(self, path: str) -> URL:
        """The absolute URL of an already-encoded API path such as ``/analyze/tasks/abc``."""
        return self._origin.with_path(self._base_path + path, encoded=True)

    def _client_timeout(self, timeout: Timeout, has_body: bool) -> aiohttp.ClientTimeout:
        """aiohttp's share of the limits: connecting always, and ``read`` for requests with a
        body (only aiohttp knows when the body has been sent and the wait for an answer
        begins). The rest is kept by ``self._deadlines``, whose one timer is far cheaper than
        aiohttp's per-request ones (before Python 3.11, aiohttp keeps every limit). A few
        values are cached; timeouts computed per call (from a remaining budget) are not
        kept for the client's life."""
        key = (timeout, has_body)
        cached = self._client_timeouts.get(key)
        if cached is None:
            import aiohttp

            shared = self._deadlines is not None
            cached = aiohttp.ClientTimeout(
                total=None if shared else timeout.total,
                sock_connect=timeout.connect,
                sock_read=None if shared and not has_body else timeout.read,
            )
            if len(self._client_timeouts) >= _TIMEOUT_CACHE_SIZE:
                self._client_timeouts.clear()
            self._client_timeouts[key] = cached
        return cached

    # --- one logical request: prepare, then try until done -------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, str]] | None = None,
        json: Any = None,
        form: list[tuple[str, FormValue]] | None = None,
        headers: Mapping[str, str] | None = None,
        options: RequestOptions | None = None,
        idempotency_key: str | None = None,
    ) -> Response:
        """Send one logical request, retrying as the method and the failure allow.

        ``path`` must already be encoded (use :func:`encode_path_segment` for ids). With
        ``idempotency_key`` (or for GET/DELETE) the request counts as idempotent and is retried
        on every transient failure; other POSTs only on 429 or when nothing was sent.
        """
        call = self._prepare(
            method, path, params, json, form, headers, options or _NO_OPTIONS, idempotency_key
        )
        return await self._send(call)

    async def _send(self, call: _Call) -> Response:
        """Try ``call`` until it succeeds or :func:`retry_delay` gives up."""
        while True:
            try:
                return await self._attempt(call)
            except APIError as error:
                delay = retry_delay(call, error, self.retry_policy)  # or raises `error`
                _log_retry(call, error, delay)
                if call.sent and not (
                    isinstance(error, APIStatusError) and error.status_code in (408, 429)
                ):
                    call.maybe_applied = True
            call.attempt += 1
            await anyio.sleep(delay)

    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | Iterable[tuple[str, str]] | None,
        json: Any,
        form: list[tuple[str, FormValue]] | None,
        headers: Mapping[str, str] | None,
        opts: RequestOptions,
        idempotency_key: str | None,
    ) -> _Call:
        max_retries = self.max_retries if opts.max_retries is None else opts.max_retries
        forced = testing_max_retries()
        if forced is not None:
            max_retries = forced
        if opts.extra_body:
            if json is not None:
                json = {**msgspec.to_builtins(json), **opts.extra_body}
            elif form is not None:
                form = [*form, *((k, _form_text(v)) for k, v in opts.extra_body.items())]
            else:
                raise ValueError(
                    f"additional body parameters were given for {method} {path}, "
                    "which sends no body"
                )
        if opts.extra_query:
            params = _merge_query(params, opts.extra_query)
        call_headers = self._json_headers if json is not None else self._headers
        if headers or idempotency_key or opts.extra_headers:
            call_headers = {**call_headers, **(headers or {})}
            if idempotency_key:
                call_headers["Idempotency-Key"] = idempotency_key
            for name, value in (opts.extra_headers or {}).items():
                for same in [key for key in call_headers if key.lower() == name.lower()]:
                    del call_headers[same]  # replaced, not sent twice in another case
                call_headers[name] = value
        return _Call(
            method,
            path,
            self.url_for(path),
            params,
            None if json is None else _json_encode(json),
            form,
            call_headers,
            opts.timeout or self.timeout,
            max_retries,
            method in ("GET", "HEAD", "DELETE", "OPTIONS", "PUT") or idempotency_key is not None,
            opts,
        )

    @staticmethod
    def new_idempotency_key() -> str:
        """A fresh random key for one logical create call."""
        return uuid.uuid4().hex

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, str]] | None = None,
        options: RequestOptions | None = None,
    ) -> AsyncIterator[StreamedBody]:
        """Open a response whose body is read piece by piece (``async with``).

        Opening is retried like :meth:`request`; once the status line and headers have
        arrived, the body belongs to the caller and is not retried (a connection lost midway
        raises :class:`APIConnectionError` from the iterator)."""
        call = self._prepare(method, path, params, None, None, None, options or _NO_OPTIONS, None)
        call.stream = True
        response = await self._send(call)
        raw = response.raw
        assert raw is not None
        try:
            yield StreamedBody(raw, call.method, call.path, self.max_response_size, self._api_key)
        finally:
            raw.release()

    async def request_external(
        self,
        method: str,
        url: str,
        *,
        content: bytes | memoryview,
        headers: Mapping[str, str] | None = None,
        options: RequestOptions | None = None,
    ) -> Response:
        """Send ``content`` to an absolute URL outside the API (a presigned storage URL).

        The API key is never sent there (the URL carries its own signature), and only the
        URL's path, never its query string (the signature), appears in errors and logs. The
        body is written slice by slice, so no second copy of it waits in a buffer."""
        from yarl import URL

        target = URL(url, encoded=True)
        if target.scheme not in ("http", "https") or not target.host:
            raise ValueError("the upload URL must be an absolute http(s) URL")
        call_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if not any(name.lower() == "content-type" for name in call_headers):
            call_headers["Content-Type"] = "application/octet-stream"
        call_headers["Content-Length"] = str(len(content))
        opts = options or _NO_OPTIONS
        max_retries = self.max_retries if opts.max_retries is None else opts.max_retries
        forced = testing_max_retries()
        call = _Call(
            method,
            target.raw_path,
            target,
            None,
            content,
            None,
            call_headers,
            opts.timeout or self.timeout,
            max_retries if forced is None else forced,
            True,  # the same bytes to the same place: safe to repeat
            opts,
            sliced=True,
        )
        return await self._send(call)

    # --- one attempt ---------------------------------------------------------------------

    async def _attempt(self, call: _Call) -> Response:
        """One try: the response, or one of our errors (never an aiohttp one) for
        :func:`retry_delay` to judge."""
        session = self._ensure_session()
        slots = self._slots
        assert slots is not None
        call.sent = False
        if call.timeout.pool is None:
            await slots.acquire()
        else:
            queued = time.perf_counter()
            with anyio.move_on_after(call.timeout.pool):
                await slots.acquire()
                queued = 0.0
            if queued:
                pool_error = APITimeoutError(
                    "Timed out waiting for a free connection",
                    method=call.method,
                    path=call.path,
                    retries=call.attempt,
                    request_sent=False,
                )
                self._notify(call, None, _NO_HEADERS, queued, pool_error)
                raise pool_error
        # The send happens right here rather than in a helper coroutine: every coroutine layer
        # is paid again at each suspension of every request.
        import aiohttp  # already loaded by _ensure_session: a dictionary lookup

        clock: AttemptClock | None = None
        opened: list[IO[bytes]] = []
        status: int | None = None
        headers: Mapping[str, str] = _NO_HEADERS
        error_body: bytes | bytearray = b""  # what arrived of an error body
        deadline_hit = False
        started = 0.0
        try:
            # The rate gate's turn is taken holding a connection slot, so a request that
            # passes it leaves at once instead of queueing for a connection with others.
            if call.gate is not None:
                await call.gate(call.attempt)
            for hook in self.hooks.on_request:
                hook(call.method, call.path, call.attempt)
            data: Any = call.json_body
            if call.sliced and data is not None:
                # Written slice by slice, each awaited: the socket sets the pace, and no
                # second copy of a large body waits in the transport's buffer.
                data = _slices(data)
            if call.form is not None:
                data, opened = _build_form(call.form)
            has_body = data is not None
            timeout = call.timeout
            call.sent = True
            started = time.perf_counter()
            if self._deadlines is not None:
                clock = self._deadlines.start(None if has_body else timeout.read, timeout.total)
            try:
                # Awaited rather than entered, so that a streamed body can outlive the attempt.
                resp = await session.request(
                    call.method,
                    call.url,
                    params=call.params,
                    data=data,
                    headers=call.headers,
                    # A stream keeps aiohttp's read limit: every chunk must arrive in time.
                    timeout=self._client_timeout(timeout, has_body or call.stream),
                    allow_redirects=False,
                    proxy=self._proxy,
                    proxy_headers=self._proxy_headers,
                )
                handed_over = False
                try:
                    if clock is not None:
                        clock.progress()
                    status = resp.status
                    headers = resp.headers
                    if 200 <= status < 300:
                        if call.stream:
                            handed_over = True
                            self._notify(call, status, headers, started, None)
                            return Response(
                                call.method, call.path, status, headers, b"", call.attempt, resp
                            )
                        body = await self._read_body(resp, call, clock)
                        self._notify(call, status, headers, started, None)
                        return Response(call.method, call.path, status, headers, body, call.attempt)
                    error_body = buffer = bytearray()
                    await _read_error_body(resp, buffer, clock)
                    if status == 404 and call.maybe_applied and call.method == "DELETE":
                        # An earlier attempt deleted it and its answer was lost: done.
                        logger.info("DELETE %s: 404 after a lost answer: deleted", call.path)
                        self._notify(call, status, headers, started, None)
                        return Response(call.method, call.path, status, headers, b"", call.attempt)
                    error: APIError = self._status_error(call, status, headers, bytes(error_body))
                finally:
                    if not handed_over:
                        resp.release()
            except asyncio.CancelledError:
                reason = clock.timed_out() if clock is not None else None
                if reason is None:
                    raise
                deadline_hit = True
                if status is not None and not 200 <= status < 300:
                    # A slowly trickled error body: the status said what went wrong.
                    error = self._status_error(call, status, headers, bytes(error_body))
                else:
                    error = self._map_error(call, AttemptTimeoutError(reason))
            except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
                error = self._map_error(call, exc)
            except APIError as exc:  # ResponseTooLargeError from _read_body
                error = exc
        finally:
            slots.release()
            if clock is not None:
                clock.stop()
                clock.settle()
            for handle in opened:
                handle.close()
        # Raised here, outside every `except`, so that no aiohttp exception (whose repr holds
        # the request headers, key included) is chained to it as __context__.
        self._notify(
            call,
            status if isinstance(error, (APIStatusError, ResponseDecodeError)) else None,
            headers if isinstance(error, APIStatusError) else _NO_HEADERS,
            started,
            error,
        )
        if deadline_hit or isinstance(error, APITimeoutError):
            # The attempt's limit and the caller's own cancellation (a cancel scope, a
            # Task.cancel()) came due together: anyio delivers its cancellation on the next
            # loop turn, and a cancel() that found the task already woken is held until its
            # next await. Take that turn before raising, and the caller's cancellation wins.
            await anyio.lowlevel.checkpoint()
        raise error

    def _map_error(self, call: _Call, exc: BaseException) -> APIError:
        """The one place where aiohttp's (and asyncio's) exceptions become ours.

        The result has no cause or context and a message of the exception's type and text with
        the key scrubbed out: aiohttp exceptions carry the request headers in their repr.
        Also records whether the attempt may have reached the server.
        """
        import aiohttp

        # Refused, unresolvable, TLS failure or a connect timeout: nothing was sent.
        nothing_sent = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
        call.sent = not isinstance(exc, nothing_sent)
        kind: type[APIConnectionError]
        if isinstance(exc, AttemptTimeoutError):
            kind, what, detail = APITimeoutError, "Request timed out", str(exc)
        else:
            text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
            text = text.replace(self._api_key, "***") if text else ""
            detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                kind, what = APITimeoutError, "Request timed out"
            elif isinstance(exc, aiohttp.ClientResponseError):
                # The response broke HTTP itself (a header over 8 KB, bad characters, a bad
                # status line, conflicting lengths): typically a proxy's or CDN's error page.
                kind, what = APIProtocolError, "Malformed HTTP response"
            else:
                kind, what = APIConnectionError, "Connection error"
        return kind(
            f"{what} ({detail})",
            method=call.method,
            path=call.path,
            retries=call.attempt,
            request_sent=call.sent,
        )

    async def _read_body(
        self, resp: aiohttp.ClientResponse, call: _Call, clock: AttemptClock | None
    ) -> bytes:
        limit = self.max_response_size
        length = resp.content_length
        if length is not None and length > limit:
            raise self._too_large(call, resp.status, length)
        # Chunk by chunk, so that every chunk restarts the read limit and an endless body stops
        # at the size limit; a body that arrived with its headers takes one call.
        content = resp.content
        chunks: list[bytes] = []
        size = 0
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                raise self._too_large(call, resp.status, size)
            chunks.append(chunk)
            if content.at_eof():
                break
            if clock is not None:
                clock.progress()
        return b"".join(chunks)  # one chunk: returned as is, not copied

    def _too_large(self, call: _Call, status: int, size: int) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"Response body of {size}+ bytes exceeds max_response_size={self.max_response_size}",
            status_code=status,
            method=call.method,
            path=call.path,
            retries=call.attempt,
        )

    def _status_error(
        self, call: _Call, status: int, headers: Mapping[str, str], body: bytes
    ) -> APIStatusError:
        code, message, decoded = parse_error_body(body)
        if message is None or not message.strip():  # an empty message is no message
            reason = "redirect not followed" if 300 <= status < 400 else "no error message"
            message = f"HTTP {status} ({reason})"
        return status_error_class(status)(
            message,
            status_code=status,
            code=code,
            headers=headers,
            method=call.method,
            path=call.path,
            retries=call.attempt,
            body=decoded,
        )

    def _notify(
        self,
        call: _Call,
        status: int | None,
        headers: Mapping[str, str],
        started: float,
        error: BaseException | None,
    ) -> None:
        hooks = self.hooks.on_response
        observer = call.observer
        debug = logger.isEnabledFor(logging.DEBUG)
        if not hooks and observer is None and not debug:
            return
        elapsed = time.perf_counter() - started
        if debug:
            logger.debug(
                "%s %s -> %s in %.1f ms (attempt %d)",
                call.method,
                call.path,
                status if status is not None else type(error).__name__,
                elapsed * 1000.0,
                call.attempt + 1,
            )
        if hooks or observer is not None:
            event = ResponseEvent(
                call.method, call.path, status, headers, elapsed, call.attempt, error
            )
            # The request's own observer first: a poller that also listens on the client's
            # hooks (pause_on_client_429) knows its own event when the hooks see it.
            if observer is not None:
                observer(event)
            for hook in hooks:
                hook(event)


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class StreamedBody:
    """The body of a streamed response, read as it arrives (see :meth:`Transport.stream`)."""

    __slots__ = ("_key", "_limit", "_raw", "method", "path")

    def __init__(
        self, raw: aiohttp.ClientResponse, method: str, path: str, limit: int, key: str
    ) -> None:
        self._raw = raw
        self.method = method
        self.path = path
        self._limit = limit
        self._key = key

    def __repr__(self) -> str:
        return f"<StreamedBody {self.method} {self.path}>"

    async def lines(self) -> AsyncIterator[bytes]:
        """Each non-blank line (``\\n`` or ``\\r\\n`` endings) as soon as it is complete. Only
        one line is held at a time; a line longer than ``max_response_size`` raises
        :class:`ResponseTooLargeError`; a body cut off raises :class:`APIConnectionError`."""
        buffer = bytearray()
        chunks = self._raw.content.iter_any().__aiter__()
        while True:
            chunk, error = await self._next(chunks)
            if error is not None:
                # Raised outside the except block: aiohttp errors must not be chained (their
                # repr carries the request headers).
                raise error
            if chunk is None:
                break
            buffer += chunk
            start = 0
            while (end := buffer.find(b"\n", start)) >= 0:
                line = bytes(buffer[start:end]).rstrip(b"\r")
                start = end + 1
                if line.strip():
                    yield line
            del buffer[:start]
            if len(buffer) > self._limit:
                raise ResponseTooLargeError(
                    f"A line of more than max_response_size={self._limit} bytes",
                    status_code=self._raw.status,
                    method=self.method,
                    path=self.path,
                )
        if buffer.strip():
            yield bytes(buffer).rstrip(b"\r")

    async def _next(self, chunks: AsyncIterator[bytes]) -> tuple[bytes | None, APIError | None]:
        import aiohttp

        try:
            return await chunks.__anext__(), None
        except StopAsyncIteration:
            return None, None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            text = str(exc).replace(self._key, "***")
            return None, APIConnectionError(
                f"Connection error while streaming ({type(exc).__name__}: {text})",
                method=self.method,
                path=self.path,
                request_sent=True,
            )
        except (TimeoutError, asyncio.TimeoutError):
            return None, APITimeoutError(
                "Request timed out while streaming",
                method=self.method,
                path=self.path,
                request_sent=True,
            )


class AttemptTimeoutError(TimeoutError):
    """An attempt overran its ``read`` or ``total`` limit (the message says which)."""


async def _read_error_body(
    resp: aiohttp.ClientResponse, buffer: bytearray, clock: AttemptClock | None
) -> None:
    """Up to ``_ERROR_BODY_LIMIT`` bytes of an error body into ``buffer``, across every chunk.

    ``StreamReader.read(n)`` returns only what is buffered, so one call can miss the end of a
    body sent in several chunks. A body cut off or stalled midway keeps what arrived: the
    status decides.
    """
    import aiohttp

    try:
        while len(buffer) < _ERROR_BODY_LIMIT:
            chunk = await resp.content.read(_ERROR_BODY_LIMIT - len(buffer))
            if not chunk:
                break
            buffer += chunk
            if clock is not None:
                clock.progress()
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        pass
    except (TimeoutError, asyncio.TimeoutError):  # aiohttp's own limits (before 3.11)
        pass


_SLICE = 256 * 1024


async def _slices(body: bytes | memoryview) -> AsyncIterator[memoryview]:
    """``body`` in slices that share its memory (one generator per attempt)."""
    view = memoryview(body)
    for start in range(0, len(view), _SLICE):
        yield view[start : start + _SLICE]


def _form_text(value: Any) -> str:
    return value if isinstance(value, str) else _json_encode(value).decode()


def _merge_query(
    params: Mapping[str, Any] | Iterable[tuple[str, str]] | None,
    extra: Mapping[str, QueryValue | Sequence[QueryValue]],
) -> list[tuple[str, str]]:
    """``params`` with ``extra`` merged in: its keys replace existing ones; a list value
    becomes repeated keys, as the official SDK sends them."""
    items = list(params.items() if isinstance(params, Mapping) else params or ())
    merged = [(key, str(value)) for key, value in items if key not in extra]
    for key, value in extra.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "true" if item else "false"
            merged.append((key, str(item)))
    return merged


def _build_form(fields: list[tuple[str, FormValue]]) -> tuple[aiohttp.FormData, list[IO[bytes]]]:
    """A fresh multipart body for each attempt (aiohttp consumes a ``FormData`` once)."""
    import aiohttp

    form = aiohttp.FormData(default_to_multipart=True)
    opened: list[IO[bytes]] = []
    try:
        _add_form_fields(form, fields, opened)
    except BaseException:
        for handle in opened:
            handle.close()
        raise
    return form, opened


def _add_form_fields(
    form: aiohttp.FormData, fields: list[tuple[str, FormValue]], opened: list[IO[bytes]]
) -> None:
    for name, value in fields:
        if isinstance(value, FormFile):
            source = value.source
            if isinstance(source, os.PathLike):
                source = open(os.fspath(source), "rb")  # noqa: SIM115  (closed after the attempt)
                opened.append(source)
            elif isinstance(source, io.IOBase) and source.seekable():
                source.seek(0)
            form.add_field(name, source, filename=value.filename, content_type=value.content_type)
        elif isinstance(value, str):
            form.add_field(name, value)
        elif isinstance(value, bytes):
            form.add_field(name, value, filename=name, content_type="application/octet-stream")
        elif isinstance(value, os.PathLike):
            handle = open(os.fspath(value), "rb")  # noqa: SIM115  (closed after the attempt)
            opened.append(handle)
            form.add_field(name, handle, filename=os.path.basename(os.fspath(value)))
        else:
            if value.seekable():
                value.seek(0)
            filename = os.path.basename(str(getattr(value, "name", name)))
            form.add_field(name, value, filename=filename)
