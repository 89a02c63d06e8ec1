"""TwelveLabs webhooks: verify the signature, parse the event, drop repeats, wake a poller.

TwelveLabs can POST a notification to an endpoint you registered in its dashboard when an
analysis (or indexing) task becomes final. Each delivery carries a ``TL-Signature`` header,
``t=<unix seconds>,v1=<hex>``, where ``v1`` is the HMAC-SHA256, keyed with the webhook secret, of
``t + "." + <the raw body>``. A retried delivery reuses the event ``id``.

The simplest use is a :class:`WebhookReceiver` attached to a running poller: a notified task is
retrieved at once instead of at its next scheduled check (polling stays the fallback, since
deliveries are best effort and embedding tasks send none)::

    receiver = WebhookReceiver(secret)

    async def endpoint(request):  # any web framework: the raw body and one header
        try:
            event = receiver.receive(await request.read(), request.headers.get(SIGNATURE_HEADER))
        except WebhookError:
            return Response(status=400)
        return Response(status=204)  # answer quickly; None (a repeat) is fine too

    async with client.poller() as poller, receiver.attached(poller):
        poller.add(client.analyze.tasks, ids)
        async for outcome in poller.as_completed():
            ...
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, Protocol

import msgspec

from ._exceptions import (
    WebhookError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from ._types import TaskKind
from .types.analyze import AnalyzeVideoSource
from .types.common import Wire

__all__ = [
    "ANALYZE_TASK_CANCELED",
    "ANALYZE_TASK_FAILED",
    "ANALYZE_TASK_READY",
    "DEFAULT_TOLERANCE",
    "INDEX_TASK_FAILED",
    "INDEX_TASK_READY",
    "SIGNATURE_HEADER",
    "AnalyzeTaskEvent",
    "AnalyzeTaskEventData",
    "IndexTaskEvent",
    "IndexTaskEventData",
    "Notifiable",
    "UnknownWebhookEvent",
    "WebhookDeduplicator",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookReceiver",
    "WebhookSignatureError",
    "WebhookTaskError",
    "WebhookTimestampError",
    "compute_signature",
    "construct_event",
    "parse_event",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "TL-Signature"
"""The request header that carries ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""
DEFAULT_TOLERANCE: Final = 300.0
"""Seconds a signature's timestamp may be away from now (TwelveLabs suggests five minutes)."""

ANALYZE_TASK_READY: Final = "analyze.task.ready"
"""An analysis task finished with a result (``data.error`` may still hold a warning)."""
ANALYZE_TASK_FAILED: Final = "analyze.task.failed"
"""An analysis task failed (``data.error.message`` says why)."""
ANALYZE_TASK_CANCELED: Final = "analyze.task.canceled"
"""An analysis task was canceled."""
INDEX_TASK_READY: Final = "index.task.ready"
"""A video indexing task finished."""
INDEX_TASK_FAILED: Final = "index.task.failed"
"""A video indexing task failed."""

_ANALYZE_PREFIX = "analyze.task."
_INDEX_PREFIX = "index.task."


# --- signatures -----------------------------------------------------------------------------


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, got {type(value).__name__}")


def _secret_bytes(secret: str | bytes) -> bytes:
    key = _as_bytes(secret, "secret")
    if not key:
        raise ValueError("the webhook secret must not be empty")
    return key


def compute_signature(secret: str | bytes, timestamp: int | str, body: bytes | str) -> str:
    """The ``v1`` value: hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed with
    ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + _as_bytes(body, "body")
    return hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()


def sign(body: bytes | str, secret: str | bytes, *, timestamp: int | None = None) -> str:
    """A complete ``TL-Signature`` header value for ``body`` (for tests and fake servers).

    ``timestamp`` defaults to now (Unix seconds).
    """
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={compute_signature(secret, t, body)}"


def _parse_header(header: str) -> tuple[str, list[str]]:
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "t":
            timestamp = value
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} header has no valid 't=<unix seconds>'")
    if not signatures:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} header has no 'v1=' signature")
    return timestamp, signatures


def verify_signature(
    body: bytes | str,
    header: str | None,
    secret: str | bytes,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a ``TL-Signature`` header against the raw request body; return its timestamp.

    Pass the body exactly as received (never re-serialised JSON). Every ``v1`` in the header is
    tried (constant-time comparison), so a header listing several signatures verifies if one
    matches. The timestamp is checked after the signature, against ``now`` (Unix seconds,
    default the current time), unless ``tolerance`` is ``None``.

    Raises:
        WebhookSignatureError: no header, a malformed one, or no matching signature.
        WebhookTimestampError: a valid signature older (or newer) than ``tolerance`` seconds.
    """
    if not header:
        raise WebhookSignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse_header(header)
    expected = compute_signature(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in signatures:
        # Every candidate is compared (no early exit), in constant time.
        if hmac.compare_digest(expected, candidate.lower().encode("utf-8", "replace")):
            matched = True
    if not matched:
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} does not match the body (wrong secret, or a modified body?)"
        )
    t = int(timestamp)
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - t) > tolerance:
            raise WebhookTimestampError(
                f"{SIGNATURE_HEADER} timestamp {t} is {current - t:+.0f}s from now "
                f"(tolerance {tolerance:g}s)",
                timestamp=t,
                now=current,
            )
    return t


# --- events ---------------------------------------------------------------------------------


class WebhookTaskError(Wire):
    """``data.error`` of an analysis event: why it failed, or a warning on a ready task."""

    message: str | None = None
    code: str | None = None


class AnalyzeTaskEventData(Wire):
    """``data`` of an ``analyze.task.*`` event. It has no result: retrieve the task for it."""

    id: str
    status: str | None = None
    custom_id: str | None = None
    created_at: datetime | None = None
    video_source: AnalyzeVideoSource | None = None
    error: WebhookTaskError | None = None

    @property
    def task_id(self) -> str:
        """The analysis task's id (same as ``id``)."""
        return self.id


class IndexTaskEventData(Wire):
    """``data`` of an ``index.task.*`` event (video indexing; not handled by this client)."""

    id: str
    status: str | None = None
    metadata: dict[str, Any] | None = None
    models: list[dict[str, Any]] | None = None
    tags: list[str] | None = None


class WebhookEvent(Wire):
    """A webhook notification: the envelope ``{id, created_at, type, data}``.

    :func:`parse_event` returns one of the subclasses :class:`AnalyzeTaskEvent`,
    :class:`IndexTaskEvent` or, for a type this version does not know,
    :class:`UnknownWebhookEvent` (its ``data`` kept as decoded JSON).
    """

    id: str
    """The event id; a retried delivery reuses it."""
    type: str
    """e.g. ``"analyze.task.ready"``."""
    created_at: datetime | None = None
    data: Any = None

    @property
    def task_id(self) -> str | None:
        """The id of the task the event is about, if it names one."""
        data = self.data
        if isinstance(data, dict):
            value = data.get("id")
            return value if isinstance(value, str) else None
        value = getattr(data, "id", None)
        return value if isinstance(value, str) else None

    @property
    def task_kind(self) -> TaskKind | None:
        """The poller kind the task belongs to (``"analyze"``), or ``None``."""
        return None

    @property
    def status(self) -> str | None:
        """The task's final status as the event reports it."""
        data = self.data
        value = data.get("status") if isinstance(data, dict) else getattr(data, "status", None)
        return value if isinstance(value, str) else None


class AnalyzeTaskEvent(WebhookEvent, kw_only=True):
    """``analyze.task.ready``, ``analyze.task.failed`` or ``analyze.task.canceled``."""

    data: AnalyzeTaskEventData

    @property
    def task_kind(self) -> TaskKind | None:
        """Always ``"analyze"``."""
        return "analyze"


class IndexTaskEvent(WebhookEvent, kw_only=True):
    """``index.task.ready`` or ``index.task.failed``."""

    data: IndexTaskEventData


class UnknownWebhookEvent(WebhookEvent):
    """An event of a type this version does not know; ``data`` is the decoded JSON as is."""


class _Envelope(msgspec.Struct):
    id: str
    type: str
    created_at: datetime | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_analyze_decoder = msgspec.json.Decoder(AnalyzeTaskEventData)
_index_decoder = msgspec.json.Decoder(IndexTaskEventData)
_any_decoder = msgspec.json.Decoder()


def parse_event(body: bytes | str) -> WebhookEvent:
    """Decode a (verified) webhook body into a :class:`WebhookEvent` subclass.

    Raises:
        WebhookPayloadError: not JSON, or not an event envelope, or a known type whose ``data``
            does not fit.
    """
    raw = _as_bytes(body, "body")
    try:
        envelope = _envelope_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise WebhookPayloadError(f"not a webhook event: {exc}") from None
    kind = envelope.type
    try:
        if kind.startswith(_ANALYZE_PREFIX):
            return AnalyzeTaskEvent(
                id=envelope.id,
                type=kind,
                created_at=envelope.created_at,
                data=_analyze_decoder.decode(envelope.data),
            )
        if kind.startswith(_INDEX_PREFIX):
            return IndexTaskEvent(
                id=envelope.id,
                type=kind,
                created_at=envelope.created_at,
                data=_index_decoder.decode(envelope.data),
            )
        data = _any_decoder.decode(envelope.data)
    except msgspec.DecodeError as exc:
        raise WebhookPayloadError(f"{kind} event {envelope.id!r}: bad data: {exc}") from None
    return UnknownWebhookEvent(id=envelope.id, type=kind, created_at=envelope.created_at, data=data)


def construct_event(
    body: bytes | str,
    header: str | None,
    secret: str | bytes,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """:func:`verify_signature`, then :func:`parse_event`."""
    verify_signature(body, header, secret, tolerance=tolerance, now=now)
    return parse_event(body)


# --- de-duplication and the receiver --------------------------------------------------------


class WebhookDeduplicator:
    """Remembers the ids of the last ``max_size`` events (least recently seen dropped first),
    so a retried delivery is handled once. Thread-safe."""

    def __init__(self, max_size: int = 10_000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<WebhookDeduplicator {len(self._seen)}/{self.max_size}>"

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    def is_duplicate(self, event_id: str) -> bool:
        """``True`` if ``event_id`` was seen before; otherwise remember it and return ``False``."""
        with self._lock:
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                return True
            self._seen[event_id] = None
            if len(self._seen) > self.max_size:
                self._seen.popitem(last=False)
            return False

    def forget(self, event_id: str) -> None:
        """Drop ``event_id`` (e.g. its handling failed, so that a retry is handled again)."""
        with self._lock:
            self._seen.pop(event_id, None)

    def clear(self) -> None:
        """Forget every id."""
        with self._lock:
            self._seen.clear()


class Notifiable(Protocol):
    """Anything with the poller's ``notify(task_id, kind)``, such as a
    :class:`~twelvelabs_async.Poller`."""

    def notify(self, task_id: str, kind: TaskKind | None = None) -> bool: ...


class WebhookReceiver:
    """Verify, parse and de-duplicate webhook deliveries, then wake the attached pollers.

    Args:
        secret: the webhook's secret (dashboard, "Reveal Secret").
        tolerance: seconds a signature's timestamp may differ from now (``None``: no check).
        max_events: how many recent event ids are remembered to drop repeated deliveries.
        now: a clock returning Unix seconds (for tests); default :func:`time.time`.
        pollers: pollers to notify from the start (see :meth:`attach`).

    Attributes:
        handlers: callables run with every new (non-repeated) event, after the pollers are told.
        received, duplicates, rejected: counters of accepted, repeated and refused deliveries.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        tolerance: float | None = DEFAULT_TOLERANCE,
        max_events: int = 10_000,
        now: Callable[[], float] | None = None,
        pollers: Iterable[Notifiable] = (),
    ) -> None:
        self._secret = _secret_bytes(secret)
        self.tolerance = tolerance
        self._now = now or time.time
        self.dedupe = WebhookDeduplicator(max_events)
        self._pollers: list[Notifiable] = list(pollers)
        self.handlers: list[Callable[[WebhookEvent], None]] = []
        self.received = 0
        self.duplicates = 0
        self.rejected = 0

    def __repr__(self) -> str:
        # Never the secret.
        return (
            f"<WebhookReceiver pollers={len(self._pollers)} received={self.received} "
            f"duplicates={self.duplicates} rejected={self.rejected}>"
        )

    def attach(self, poller: Notifiable) -> None:
        """Tell ``poller`` about every task a new event names."""
        if poller not in self._pollers:
            self._pollers.append(poller)

    def detach(self, poller: Notifiable) -> None:
        """Stop telling ``poller`` (a no-op if it is not attached)."""
        if poller in self._pollers:
            self._pollers.remove(poller)

    @contextmanager
    def attached(self, poller: Notifiable) -> Iterator[Notifiable]:
        """``with receiver.attached(poller):`` attach for the duration of the block."""
        self.attach(poller)
        try:
            yield poller
        finally:
            self.detach(poller)

    def receive(
        self,
        body: bytes | str,
        signature: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> WebhookEvent | None:
        """Handle one delivery: return the new event, or ``None`` for a repeated one.

        Pass the raw body and the ``TL-Signature`` header (or all ``headers``). Attached pollers
        are told to check the event's task at once (``poller.notify``), then ``handlers`` run.
        If a handler raises, the event is forgotten (so the platform's retry is handled again)
        and the error propagates: answer non-2xx then.

        Raises:
            WebhookSignatureError, WebhookTimestampError, WebhookPayloadError: refuse the
            delivery (answer 400).
        """
        if signature is None and headers is not None:
            signature = _header(headers, SIGNATURE_HEADER)
        try:
            event = construct_event(
                body, signature, self._secret, tolerance=self.tolerance, now=self._now()
            )
        except WebhookError:
            self.rejected += 1
            raise
        if self.dedupe.is_duplicate(event.id):
            self.duplicates += 1
            return None
        self.received += 1
        try:
            self.notify(event)
            for handler in list(self.handlers):
                handler(event)
        except BaseException:
            self.dedupe.forget(event.id)
            raise
        return event

    def notify(self, event: WebhookEvent) -> int:
        """Tell the attached pollers about ``event``'s task; return how many were watching it."""
        task_id, kind = event.task_id, event.task_kind
        if task_id is None or kind is None:
            return 0
        return sum(1 for poller in list(self._pollers) if poller.notify(task_id, kind))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, item in headers.items():
        if key.lower() == lower:
            return item
    return None
