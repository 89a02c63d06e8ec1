"""``FakeTwelveLabs``: the handle that runs the fake server and exposes its state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from ..webhooks import SIGNATURE_HEADER, sign
from ._app import FakeApp, RequestRecord
from ._assets import AssetStore
from ._batches import BatchStore
from ._faults import Chaos, FaultPlan
from ._payloads import Payloads
from ._store import PerKind, TaskKind, TaskRecord, TaskStore, format_ms

__all__ = ["FakeTwelveLabs", "WebhookDelivery"]

DEFAULT_TEST_KEY = "test-key"
DEFAULT_WEBHOOK_SECRET = "test-webhook-secret"  # noqa: S105  (a test fixture value)
WEBHOOK_CHECK_INTERVAL = 0.05
"""Seconds between two checks for time-based tasks that became due (only with webhooks)."""
WEBHOOK_WORKERS = 4
WEBHOOK_RETRY_DELAYS = (0.1, 0.5)
"""Waits before the second and third delivery attempt of an event."""

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class WebhookDelivery:
    """One webhook event the fake sent (or tried to): its id, type and task, how many
    attempts it took, the last HTTP status (0 = no response) and whether a 2xx came back."""

    event_id: str
    type: str
    task_id: str
    attempts: int = 0
    status: int = 0
    delivered: bool = False
    error: str | None = None


_T = TypeVar("_T")
PerIndex: TypeAlias = _T | Callable[[int], _T]
"""A value, or a callable mapping a task's index (0-based) to the value."""


def _at(value: PerIndex[_T], i: int) -> _T:
    if callable(value):
        return value(i)
    return value


STANDALONE_FINISH_AFTER_POLLS = 2
"""Polls until a task is final on a fake run from the command line, unless told otherwise."""


def standalone_finish_after_polls(polls: int | None, seconds: float | None) -> int | None:
    """The command-line fakes' rule: ``polls`` if given, none if only ``seconds`` is given,
    else :data:`STANDALONE_FINISH_AFTER_POLLS`."""
    if polls is None and seconds is None:
        return STANDALONE_FINISH_AFTER_POLLS
    return polls


class FakeTwelveLabs:
    """A faithful fake TwelveLabs API (v1.3 task endpoints) on a real local HTTP server.

    Use as ``async with FakeTwelveLabs() as fake:`` (or ``await fake.start()`` /
    ``await fake.close()``) and point a client at :attr:`base_url` with
    :attr:`api_key`. With ``api_key=None`` any non-empty key is accepted.

    ``clock`` drives task progression and ``final_at`` (inject a fake clock to
    control time-based finishing); the rate-limit window uses the wall clock.
    ``rate_limit_window`` (seconds, default 60) and ``request_log_size`` (most
    recent requests kept in :attr:`request_log`, ``None`` = unbounded) are extras.
    ``default_finish_after_seconds`` and ``default_final_status`` may be callables
    taking the task's kind, called for each new task (e.g. random finish times).

    With ``webhook_url``, every analysis task that becomes final is announced by a
    signed ``analyze.task.ready|failed|canceled`` POST to that URL (``TL-Signature``
    with ``webhook_secret``, default ``"test-webhook-secret"``), each event sent
    ``webhook_repeat`` times (to test de-duplication) and retried twice on failure.
    A background loop brings time-based tasks up to date while webhooks are on, so
    they are announced when due, not only when next read. See :attr:`webhook_deliveries`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_per_minute: int = 600,
        enforce_rate_limit: bool = False,
        embedding_dim: int = 1024,
        segments: int = 4,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        default_finish_after_polls: int | None = 2,
        default_finish_after_seconds: PerKind[float | None] = None,
        default_final_status: PerKind[str] = "ready",
        analyze_full_page_info: bool = False,
        rate_limit_window: float = 60.0,
        request_log_size: int | None = 100_000,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_repeat: int = 1,
    ) -> None:
        if api_key == "":
            raise ValueError("api_key must be None (accept any key) or a non-empty string")
        if webhook_repeat < 1:
            raise ValueError("webhook_repeat must be at least 1")
        self.webhook_url = webhook_url
        """Where analysis-task webhooks are POSTed (``None``: no webhooks)."""
        self.webhook_secret = webhook_secret or DEFAULT_WEBHOOK_SECRET
        """The secret webhook signatures are made with."""
        self.webhook_repeat = webhook_repeat
        self.webhook_deliveries: list[WebhookDelivery] = []
        """Every webhook event sent or attempted, in order of the task becoming final."""
        self._webhook_queue: asyncio.Queue[tuple[WebhookDelivery, bytes]] = asyncio.Queue()
        self._webhook_tasks: list[asyncio.Task[None]] = []
        self._webhook_session: aiohttp.ClientSession | None = None
        self._expected_key = api_key
        self.host = host
        self._requested_port = port
        self.clock = clock
        self.store = TaskStore(
            clock=clock,
            default_finish_after_polls=default_finish_after_polls,
            default_finish_after_seconds=default_finish_after_seconds,
            default_final_status=default_final_status,
            seed=seed,
        )
        """The task store (records, progression)."""
        self.payloads = Payloads(embedding_dim=embedding_dim, segments=segments, seed=seed)
        """The wire-body builder (shared embedding vectors live here)."""
        self.app = FakeApp(
            store=self.store,
            payloads=self.payloads,
            api_key=api_key,
            clock=clock,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_window=rate_limit_window,
            enforce_rate_limit=enforce_rate_limit,
            analyze_full_page_info=analyze_full_page_info,
            request_log_size=request_log_size,
        )
        """The request-handling state (counters, log, rate window)."""
        if webhook_url is not None:
            self.store.on_final = self._task_final
        self._runner: web.ServerRunner | None = None
        self._server: web.Server | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeTwelveLabs:
        """Start listening (idempotent); returns ``self``."""
        if self._runner is not None:
            return self
        server = web.Server(self.app.handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._server = server
        if self.webhook_url is not None:
            self._webhook_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))
            self._webhook_tasks = [asyncio.create_task(self._catch_up_loop())]
            self._webhook_tasks += [
                asyncio.create_task(self._webhook_worker()) for _ in range(WEBHOOK_WORKERS)
            ]
        return self

    async def serve_until_signalled(
        self, on_ready: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Start, await ``on_ready()``, then serve until SIGINT or SIGTERM, and close.

        Used by the standalone server (``python -m twelvelabs_async.testing``) and the
        ``fake-server`` command. Raises ``OSError`` when the port cannot be bound.
        """
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            if on_ready is not None:
                await on_ready()
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the server and close every connection (idempotent)."""
        tasks, self._webhook_tasks = self._webhook_tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # wait() reaps the cancelled workers without swallowing a cancellation of our own.
            await asyncio.wait(tasks)
        session, self._webhook_session = self._webhook_session, None
        if session is not None:
            await session.close()
        runner, self._runner = self._runner, None
        server, self._server = self._server, None
        if runner is None or server is None:
            return
        # Let accepts already under way complete first: asyncio (3.11) leaks the
        # socket of a connection accepted just before its server closes.
        for _ in range(3):
            await asyncio.sleep(0)
        await runner.cleanup()
        # Connections that completed during the shutdown are not closed by aiohttp:
        # let their handlers start, then close them.
        for _ in range(2):
            await asyncio.sleep(0)
        for handler in server.connections:
            handler.force_close()
        await asyncio.sleep(0)  # let the transports release their sockets

    async def __aenter__(self) -> FakeTwelveLabs:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The TCP port the server listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FakeTwelveLabs is not started")
        return self._port

    @property
    def url(self) -> str:
        """Server root URL, e.g. ``http://127.0.0.1:8123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """API base URL including the version prefix, e.g. ``http://127.0.0.1:8123/v1.3``."""
        return self.url + "/v1.3"

    @property
    def api_key(self) -> str:
        """The key tests should send (``"test-key"`` when any key is accepted)."""
        return self._expected_key if self._expected_key is not None else DEFAULT_TEST_KEY

    # ------------------------------------------------------------------ tasks

    def add_task(
        self,
        kind: TaskKind,
        *,
        status: str | None = None,
        finish_after_polls: int | None = None,
        finish_after_seconds: float | None = None,
        final_status: str | None = None,
        error_message: str | None = None,
        created_at: datetime | None = None,
        video_url: str | None = None,
        asset_id: str | None = None,
        analysis_mode: str = "general",
        custom_id: str | None = None,
    ) -> str:
        """Create a task directly in the store and return its id.

        ``status`` is the initial status (default ``processing``, or ``queued``
        for analysis; a final status creates the task final). When neither
        ``finish_after_polls`` nor ``finish_after_seconds`` is given the server
        defaults apply; ``finish_after_seconds=math.inf`` never finishes on its
        own. ``final_status`` defaults to the server's ``default_final_status``.
        """
        return self.store.add(
            kind,
            status=status,
            finish_after_polls=finish_after_polls,
            finish_after_seconds=finish_after_seconds,
            final_status=final_status,
            error_message=error_message,
            created_at=created_at,
            video_url=video_url,
            asset_id=asset_id,
            analysis_mode=analysis_mode,
            custom_id=custom_id,
        ).id

    def add_tasks(
        self,
        kind: TaskKind,
        count: int,
        *,
        status: PerIndex[str | None] = None,
        finish_after_polls: PerIndex[int | None] = None,
        finish_after_seconds: PerIndex[float | None] = None,
        final_status: PerIndex[str | None] = None,
        error_message: PerIndex[str | None] = None,
        created_at: PerIndex[datetime | None] = None,
        video_url: PerIndex[str | None] = None,
        asset_id: PerIndex[str | None] = None,
        analysis_mode: PerIndex[str] = "general",
        custom_id: PerIndex[str | None] = None,
    ) -> list[str]:
        """Create ``count`` tasks like :meth:`add_task`; each argument may be ``f(index)``."""
        add = self.store.add
        now = self.clock()
        return [
            add(
                kind,
                status=_at(status, i),
                finish_after_polls=_at(finish_after_polls, i),
                finish_after_seconds=_at(finish_after_seconds, i),
                final_status=_at(final_status, i),
                error_message=_at(error_message, i),
                created_at=_at(created_at, i),
                video_url=_at(video_url, i),
                asset_id=_at(asset_id, i),
                analysis_mode=_at(analysis_mode, i),
                custom_id=_at(custom_id, i),
                now=now,
            ).id
            for i in range(count)
        ]

    @property
    def assets(self) -> AssetStore:
        """Assets and multipart upload sessions (records, knobs such as ``final_status``,
        ``chunk_size``, ``initial_urls``, and ``part_puts`` counts)."""
        return self.app.assets.store

    @property
    def batches(self) -> BatchStore:
        """Analysis batches (records, knobs ``finish_after_polls`` and ``fail_custom_ids``)."""
        return self.app.batches.store

    def add_asset(
        self, filename: str = "video.mp4", *, status: str = "ready", file_type: str = "video/mp4"
    ) -> str:
        """An asset made directly in the store (``ready`` unless told), for batch tests."""
        rec = self.assets.add_asset("direct", filename, file_type)
        rec.status = status
        rec.size = 1_000_000
        return rec.id

    def task(self, kind: TaskKind, task_id: str) -> TaskRecord:
        """The store record of a task (time-based progress applied); ``KeyError`` if unknown."""
        return self.store.require(kind, task_id)

    def tasks(self, kind: TaskKind) -> list[TaskRecord]:
        """All records of ``kind`` in creation order (time-based progress applied)."""
        return self.store.all(kind)

    def set_status(
        self, kind: TaskKind, task_id: str, status: str, *, error_message: str | None = None
    ) -> None:
        """Force a task into ``status`` now (a final status sets ``final_at = clock()``)."""
        rec = self.store.require(kind, task_id)
        self.store.set_status(rec, status, error_message=error_message)

    def delete_task(self, kind: TaskKind, task_id: str) -> None:
        """Remove a task (simulates deletion / 7-day expiry: later reads get 404)."""
        if self.store.delete(kind, task_id) is None:
            raise KeyError(f"no {kind} task {task_id!r}")

    # ------------------------------------------------------------------ faults & counters

    @property
    def faults(self) -> FaultPlan:
        """The programmable fault plan (``push`` / ``clear``)."""
        return self.app.faults

    @property
    def chaos(self) -> Chaos | None:
        """Random chaos applied to every request (``None`` = off, the default)."""
        return self.app.chaos

    @chaos.setter
    def chaos(self, value: Chaos | None) -> None:
        self.app.chaos = value

    @property
    def chaos_counts(self) -> dict[str, int]:
        """How many of each chaos fault were injected (keys ``5xx, 429, drop, truncate, slow``)."""
        return dict(self.app.chaos_counts)

    @property
    def requests_total(self) -> int:
        """Number of requests received (all routes, faults included)."""
        return self.app.requests_total

    def request_count(self, route: str | None = None, *, method: str | None = None) -> int:
        """Requests received for ``route`` (e.g. ``"GET /v1.3/embed-v2/tasks/{task_id}"``).

        ``route`` may also be a template without method (any method), ``"*"``, or a
        concrete raw path; ``method`` filters by HTTP method. No arguments = total.
        """
        return self.app.request_count(route, method=method)

    @property
    def request_log(self) -> list[RequestRecord]:
        """The most recent requests, oldest first (never contains the API key)."""
        return list(self.app.request_log)

    def reset_counters(self) -> None:
        """Zero request counters, the request log and the chaos counts."""
        self.app.reset_counters()

    def reset_rate_limit(self) -> None:
        """Start a fresh rate-limit window with the next request."""
        self.app.reset_rate_limit()

    # ------------------------------------------------------------------ webhooks

    def webhook_event(self, rec: TaskRecord, *, event_id: str | None = None) -> bytes:
        """The body of the ``analyze.task.<status>`` event announcing a final task."""
        data: dict[str, Any] = {
            "id": rec.id,
            "custom_id": rec.custom_id,
            "created_at": format_ms(rec.created_ms),
        }
        source = self.payloads.analyze_video_source(rec)
        if source is not None:
            data["video_source"] = source
        data["status"] = rec.status
        if rec.status != "canceled" and rec.error_message is not None:
            data["error"] = {"message": rec.error_message}
        envelope = {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "created_at": format_ms(int(time.time() * 1000)),
            "type": f"analyze.task.{rec.status}",
            "data": data,
        }
        return msgspec.json.encode(envelope)

    def _task_final(self, rec: TaskRecord) -> None:
        if rec.kind != "analyze" or self.webhook_url is None:
            return
        event_id = f"evt_{uuid.uuid4().hex}"
        body = self.webhook_event(rec, event_id=event_id)
        for _ in range(self.webhook_repeat):
            delivery = WebhookDelivery(event_id, f"analyze.task.{rec.status}", rec.id)
            self.webhook_deliveries.append(delivery)
            self._webhook_queue.put_nowait((delivery, body))

    async def _catch_up_loop(self) -> None:
        # Time-based tasks are otherwise finalized lazily, when read.
        while True:
            await asyncio.sleep(WEBHOOK_CHECK_INTERVAL)
            self.store.catch_up(self.clock())

    async def _webhook_worker(self) -> None:
        while True:
            delivery, body = await self._webhook_queue.get()
            await self._deliver(delivery, body)

    async def _deliver(self, delivery: WebhookDelivery, body: bytes) -> None:
        session, url = self._webhook_session, self.webhook_url
        if session is None or url is None:
            return
        for delay in (0.0, *WEBHOOK_RETRY_DELAYS):
            if delay:
                await asyncio.sleep(delay)
            delivery.attempts += 1
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, self.webhook_secret),
            }
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    delivery.status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                delivery.status = 0
                delivery.error = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= delivery.status < 300:
                delivery.delivered = True
                delivery.error = None
                return
            delivery.error = f"HTTP {delivery.status}"
        _log.info("webhook %s for task %s not delivered", delivery.event_id, delivery.task_id)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<FakeTwelveLabs {where}>"
