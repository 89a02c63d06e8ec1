"""HTTP transport: one aiohttp session, authentication, timeouts, retries and error mapping.

The transport speaks HTTP and JSON envelopes only; it knows nothing of tasks. It returns the raw
body bytes of a successful response so that the layer above decodes each body exactly once.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import anyio
import backoff
import msgspec

from ._config import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    RetryPolicy,
    Timeout,
    testing_max_retries,
)
from ._deadlines import SUPPORTED as SHARED_DEADLINES
from ._deadlines import AttemptClock, Deadlines
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ResponseTooLargeError,
    status_error_class,
)
from ._version import __version__

if TYPE_CHECKING:
    # aiohttp (with yarl and multidict) is most of the import cost; it is imported on first
    # use instead, inside the event loop, so `import twelvelabs_async` stays cheap.
    import aiohttp
    from multidict import CIMultiDictProxy
    from yarl import URL

__all__ = ["EventHooks", "RequestOptions", "Response", "ResponseEvent", "Transport"]

logger = logging.getLogger("twelvelabs_async")

USER_AGENT = f"twelvelabs-async/{__version__}"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 64 * 1024
_json_encode = msgspec.json.Encoder().encode

FormValue = str | bytes | os.PathLike[str] | IO[bytes]


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-call overrides. ``None`` means "use the client's setting".

    ``gate(attempt)`` is awaited before every attempt (0 for the first try, then 1, 2, ...);
    the poller uses it to hold all of its requests to one shared rate and to count them.
    """

    timeout: Timeout | None = None
    max_retries: int | None = None
    gate: Callable[[int], Awaitable[None]] | None = None
    observer: Callable[[ResponseEvent], None] | None = None
    """Called after every attempt of this request (success, status error, connection error,
    timeout) with the event the ``on_response`` hooks get; the poller watches its own
    requests' rate-limit headers this way, apart from the user's hooks."""


_NO_OPTIONS = RequestOptions()


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """What the ``on_response`` hooks are told about each attempt.

    ``status`` is ``None`` when no response arrived (``error`` then says why).
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

    __slots__ = ("body", "headers", "method", "path", "retries", "status")

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        headers: CIMultiDictProxy[str],
        body: bytes,
        retries: int,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers
        self.body = body
        self.retries = retries

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.method} {self.path} ({len(self.body)} bytes)>"


class AttemptTimeoutError(TimeoutError):
    """An attempt overran its ``read`` or ``total`` limit (the message says which)."""


class _Retry(Exception):
    """Internal signal to ``backoff``: this attempt failed and may be retried."""

    def __init__(self, error: Exception, server_hint: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.server_hint = server_hint


class _Call:
    """The state of one logical request across its attempts."""

    __slots__ = (
        "attempt",
        "failure",
        "form",
        "gate",
        "headers",
        "idempotent",
        "json_body",
        "max_retries",
        "method",
        "observer",
        "params",
        "path",
        "timeout",
        "url",
    )

    def __init__(
        self,
        method: str,
        path: str,
        url: URL,
        params: Any,
        json_body: bytes | None,
        form: list[tuple[str, FormValue]] | None,
        headers: dict[str, str],
        timeout: Timeout,
        max_retries: int,
        idempotent: bool,
        gate: Callable[[int], Awaitable[None]] | None,
        observer: Callable[[ResponseEvent], None] | None = None,
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
        self.gate = gate
        self.observer = observer
        self.attempt = 0
        self.failure: _Retry | None = None


def _wait_times(policy: RetryPolicy) -> Any:
    """A ``backoff`` wait generator that obeys server hints carried by the failed attempt."""
    attempt = 0
    failure = yield None
    while True:
        hint = failure.server_hint if isinstance(failure, _Retry) else None
        failure = yield policy.delay(attempt, hint)
        attempt += 1


def _log_backoff(details: Any) -> None:
    failure = details.get("exception")
    error = failure.error if isinstance(failure, _Retry) else failure
    logger.warning(
        "retrying after %s in %.2fs (retry %d): %s",
        type(error).__name__,
        details.get("wait", 0.0),
        details.get("tries", 0),
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


def parse_retry_hint(headers: Mapping[str, str], status: int) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, ``Retry-After`` (seconds or an
    HTTP date), or for a 429 the time until ``X-Ratelimit-Reset``."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(when.timestamp() - time.time(), 0.0)
    if status == 429:
        value = headers.get("X-Ratelimit-Reset")
        if value:
            try:
                return max(float(value) - time.time(), 0.0)
            except ValueError:
                pass
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
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Transport:
    """Sends requests for one client over one lazily created ``aiohttp.ClientSession``."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: Timeout,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        retry_policy: RetryPolicy | None = None,
        hooks: EventHooks | None = None,
        allow_insecure_http: bool = False,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
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
        # The key lives only inside this header dict, which is never printed.
        self._headers = {
            **(dict(default_headers) if default_headers else {}),
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "x-api-key": api_key,
        }
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_connections = max_connections
        self.max_response_size = max_response_size
        self.retry_policy = retry_policy or RetryPolicy()
        self.hooks = hooks or EventHooks()
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._slots: anyio.Semaphore | None = None
        self._client_timeouts: dict[tuple[Timeout, bool], aiohttp.ClientTimeout] = {}
        self._deadlines: Deadlines | None = Deadlines() if SHARED_DEADLINES else None
        self._retrying = backoff.on_exception(
            _wait_times,
            _Retry,
            max_tries=None,
            jitter=None,
            logger=None,
            on_backoff=_log_backoff,
            policy=self.retry_policy,
        )(self._retry)

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
        if session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                raise_for_status=False,
            )
            # aiohttp silently re-sends an idempotent request once when a reused keep-alive
            # connection drops; that hidden attempt would escape max_retries (and its count).
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
        elif session.closed:
            raise ClientClosedError("The aiohttp session given to the TwelveLabs client is closed.")
        if self._slots is None:
            self._slots = anyio.Semaphore(self.max_connections, fast_acquire=True)
        return session

    async def aclose(self) -> None:
        """Close the session we created (a session passed in by the user is left open)."""
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
        aiohttp's per-request ones (before Python 3.11, aiohttp keeps every limit)."""
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
            self._client_timeouts[key] = cached
        return cached

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
        opts = options or _NO_OPTIONS
        max_retries = self.max_retries if opts.max_retries is None else opts.max_retries
        forced = testing_max_retries()
        if forced is not None:
            max_retries = forced
        call_headers = self._headers
        if headers or idempotency_key:
            call_headers = {**self._headers, **(headers or {})}
            if idempotency_key:
                call_headers["Idempotency-Key"] = idempotency_key
        call = _Call(
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
            opts.gate,
            opts.observer,
        )
        # The first try runs outside backoff, whose bookkeeping would cost every request; on a
        # retryable failure backoff takes over as if it had made that first try itself.
        try:
            return await self._attempt(call)
        except _Retry as failure:
            call.failure = failure
        response: Response = await self._retrying(call)
        return response

    async def _retry(self, call: _Call) -> Response:
        """backoff's target: re-raise the failure of the try made before backoff took over
        (so backoff waits and logs exactly as after its own first try), then try again."""
        failure, call.failure = call.failure, None
        if failure is not None:
            raise failure
        return await self._attempt(call)

    @staticmethod
    def new_idempotency_key() -> str:
        """A fresh random key for one logical create call."""
        return uuid.uuid4().hex

    async def _attempt(self, call: _Call) -> Response:
        """One try. Raises ``_Retry`` when the failure may be retried, the final error otherwise."""
        session = self._ensure_session()
        slots = self._slots
        assert slots is not None
        if call.gate is not None:
            await call.gate(call.attempt)
        for hook in self.hooks.on_request:
            hook(call.method, call.path, call.attempt)
        if call.timeout.pool is None:
            await slots.acquire()
        else:
            try:
                with anyio.fail_after(call.timeout.pool):
                    await slots.acquire()
            except TimeoutError:
                raise APITimeoutError(
                    "Timed out waiting for a free connection",
                    method=call.method,
                    path=call.path,
                    retries=call.attempt,
                ) from None
        # The send happens right here rather than in a helper coroutine: every coroutine layer
        # is paid again at each suspension of every request.
        import aiohttp  # already loaded by _ensure_session: a dictionary lookup

        started = time.perf_counter()
        data: Any = call.json_body
        headers = call.headers
        opened: list[IO[bytes]] = []
        clock: AttemptClock | None = None
        try:
            if call.json_body is not None:
                headers = {**headers, "Content-Type": "application/json"}
            elif call.form is not None:
                data, opened = _build_form(call.form)
            has_body = data is not None
            timeout = call.timeout
            if self._deadlines is not None:
                clock = self._deadlines.start(None if has_body else timeout.read, timeout.total)
            async with session.request(
                call.method,
                call.url,
                params=call.params,
                data=data,
                headers=headers,
                timeout=self._client_timeout(timeout, has_body),
                allow_redirects=False,
            ) as resp:
                if clock is not None:
                    clock.progress()
                status = resp.status
                if 200 <= status < 300:
                    body = await self._read_body(resp, call, clock)
                    self._notify(call, status, resp.headers, started, None)
                    return Response(
                        call.method, call.path, status, resp.headers, body, call.attempt
                    )
                body = await _read_error_body(resp)
                self._notify(call, status, resp.headers, started, None)
                raise self._status_error(call, status, resp.headers, body)
        except asyncio.CancelledError:
            reason = clock.timed_out() if clock is not None else None
            if reason is None:
                raise
            self._fail(call, AttemptTimeoutError(reason), may_retry=call.idempotent, timeout=True)
        except aiohttp.ClientConnectorError as exc:
            # Nothing reached the server: even a plain POST may be retried.
            self._fail(call, exc, may_retry=True, timeout=False)
        except aiohttp.ConnectionTimeoutError as exc:
            self._fail(call, exc, may_retry=True, timeout=True)
        except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct classes before 3.11
            self._fail(call, exc, may_retry=call.idempotent, timeout=True)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            # Dropped or reset after the connection was made: the request may have been
            # received (even before any response header), so only idempotent calls retry.
            self._fail(call, exc, may_retry=call.idempotent, timeout=False)
        finally:
            slots.release()
            if clock is not None:
                clock.stop()
                clock.settle()
            for handle in opened:
                handle.close()
        raise AssertionError("unreachable")  # pragma: no cover

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
        self, call: _Call, status: int, headers: CIMultiDictProxy[str], body: bytes
    ) -> Exception:
        code, message, decoded = parse_error_body(body)
        if message is None or not message.strip():  # an empty message is no message
            reason = "redirect not followed" if 300 <= status < 400 else "no error message"
            message = f"HTTP {status} ({reason})"
        error = status_error_class(status)(
            message,
            status_code=status,
            code=code,
            headers=headers,
            method=call.method,
            path=call.path,
            retries=call.attempt,
            body=decoded,
        )
        retryable = status in RETRYABLE_STATUSES or status > 500
        if not call.idempotent and status != 429:
            retryable = False
        if retryable and call.attempt < call.max_retries:
            call.attempt += 1
            return _Retry(error, parse_retry_hint(headers, status))
        return error

    def _fail(self, call: _Call, exc: BaseException, *, may_retry: bool, timeout: bool) -> None:
        kind = APITimeoutError if timeout else APIConnectionError
        what = "Request timed out" if timeout else "Connection error"
        detail = type(exc).__name__
        text = str(exc)
        if isinstance(exc, AttemptTimeoutError):
            detail = text
        elif text and "x-api-key" not in text.lower():
            detail = f"{detail}: {text}"
        error = kind(f"{what} ({detail})", method=call.method, path=call.path, retries=call.attempt)
        self._notify(call, None, {}, time.perf_counter(), error)
        if may_retry and call.attempt < call.max_retries:
            call.attempt += 1
            raise _Retry(error, None) from exc
        raise error from exc

    def _notify(
        self,
        call: _Call,
        status: int | None,
        headers: Mapping[str, str],
        started: float,
        error: BaseException | None,
    ) -> None:
        hooks = self.hooks.on_response
        debug = logger.isEnabledFor(logging.DEBUG)
        if not hooks and not debug and call.observer is None:
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
        if hooks or call.observer is not None:
            event = ResponseEvent(
                call.method, call.path, status, headers, elapsed, call.attempt, error
            )
            if call.observer is not None:
                call.observer(event)
            for hook in hooks:
                hook(event)


async def _read_error_body(resp: aiohttp.ClientResponse) -> bytes:
    """Up to ``_ERROR_BODY_LIMIT`` bytes of an error body, across every chunk that arrives.

    ``StreamReader.read(n)`` returns only what is buffered, so one call can miss the end of a
    body sent in several chunks. A body cut off midway keeps what arrived: the status decides.
    """
    import aiohttp

    buffer = bytearray()
    try:
        while len(buffer) < _ERROR_BODY_LIMIT:
            chunk = await resp.content.read(_ERROR_BODY_LIMIT - len(buffer))
            if not chunk:
                break
            buffer += chunk
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        pass
    return bytes(buffer)


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
        if isinstance(value, str):
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
