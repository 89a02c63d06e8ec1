"""Where a bulk job's requests go: creates and lists through the client's resources, status
checks through a poller, every request of all three paced by one :class:`RequestGate`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio

from .._poller import Outcome, Poller
from .._ratelimit import RequestGate
from .._transport import RequestOptions, Response, Transport
from .._types import TaskKind
from ..resources import AnalyzeTasks, Assets, EmbedV1Tasks, EmbedV2Tasks, MultipartUpload
from ..resources._base import TaskResource

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from .._client import AsyncTwelveLabs
    from ..types.assets import Asset

__all__ = ["Backend", "HttpBackend"]

_LIST_PAGE = 50
POLLER_ROTATION = 5_000
"""Tasks given to one poller before the next ones go to a fresh one."""


class Backend(Protocol):
    """What a bulk job needs from the API (the HTTP one below; tests may bring a faster one)."""

    gate: RequestGate

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: Any) -> Any: ...

    async def create(self, kind: TaskKind, params: Mapping[str, Any], key: str) -> str | None:
        """Create one task; its id (``None`` if the answer had none)."""

    def listing(self, kind: TaskKind, start: datetime, end: datetime) -> AsyncIterator[Any]:
        """The kind's tasks created in ``start``..``end`` (embed kinds)."""

    def watch(self, kind: TaskKind, task_id: str) -> None:
        """Start watching a task."""

    async def upload(
        self, path: str, upload_id: str | None, on_session: Callable[[str], None]
    ) -> Asset:
        """Upload a local file as an asset (resuming ``upload_id``), waiting until it is
        final; ``on_session(upload_id)`` as soon as the session exists."""

    def outcomes(self) -> AsyncIterator[Outcome]:
        """Outcomes of watched tasks; ends when none is left to watch."""


class _GatedTransport:
    """The client's transport with ``gate`` put on every request that has none: resources
    built on it send their creates and lists under the same limit as the poller's checks."""

    def __init__(self, transport: Transport, gate: RequestGate) -> None:
        self._transport = transport
        self._gate = gate

    async def request(
        self, method: str, path: str, *, options: RequestOptions | None = None, **kwargs: Any
    ) -> Response:
        options = options or RequestOptions()
        if options.gate is None:
            options = dataclasses.replace(options, gate=self._gate)
        return await self._transport.request(method, path, options=options, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpBackend:
    """The real thing: ``client``'s resources for creates and lists, pollers for checks.

    A poller remembers every id it was given (so that adding one again is a no-op); to keep a
    long job's memory flat, the backend hands each :data:`POLLER_ROTATION` tasks to a fresh
    poller, and closes the previous one once it has delivered all of its tasks.
    """

    def __init__(self, client: AsyncTwelveLabs, gate: RequestGate, **poller_options: Any) -> None:
        self.gate = gate
        self._client = client
        self._poller_options = poller_options
        transport = cast(Transport, _GatedTransport(client._transport, gate))
        self._embed_v2 = EmbedV2Tasks(transport)
        self._embed_v1 = EmbedV1Tasks(transport)
        self._analyze = AnalyzeTasks(transport)
        self._uploads = MultipartUpload(transport, Assets(transport))
        self._timeout = poller_options.get("timeout")
        self._watched: dict[str, TaskResource[Any, Any, Any]] = {
            "embed_v2": client.embed.v2.tasks,
            "embed_v1": client.embed.v1.tasks,
            "analyze": client.analyze.tasks,
        }
        self._current: Poller | None = None
        self._current_size = 0
        self._pending = 0
        self._added = anyio.Event()
        self.pollers_opened = 0
        """Pollers started so far."""
        self.pollers_live = 0
        """Pollers still open."""
        self._group: TaskGroup | None = None
        self._send: MemoryObjectSendStream[Outcome]
        self._recv: MemoryObjectReceiveStream[Outcome]

    async def __aenter__(self) -> HttpBackend:
        self._send, self._recv = anyio.create_memory_object_stream[Outcome](math.inf)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        try:
            return await self._group.__aexit__(*exc)
        finally:
            self._send.close()
            self._recv.close()

    def watch(self, kind: TaskKind, task_id: str) -> None:
        if self._current is None or self._current_size >= POLLER_ROTATION:
            self._rotate()
        assert self._current is not None
        if not self._current.add(self._watched[kind], task_id):
            # This poller had it already (and would never deliver it again): a fresh one.
            self._rotate()
            self._current.add(self._watched[kind], task_id)
        self._current_size += 1
        self._pending += 1
        self._added.set()

    def _rotate(self) -> None:
        assert self._group is not None
        poller = self._client.poller(gate=self.gate, **self._poller_options)
        self._current = poller
        self._current_size = 0
        self.pollers_opened += 1
        self._group.start_soon(self._drain, poller)

    async def _drain(self, poller: Poller) -> None:
        """Forward ``poller``'s outcomes until it is retired and has delivered them all."""
        self.pollers_live += 1
        try:
            async with poller:
                while True:
                    async for outcome in poller.as_completed():
                        self._send.send_nowait(outcome)
                    if poller is not self._current:
                        return  # retired, and nothing left: close it (and free its ids)
                    await self._added.wait()
                    self._added = anyio.Event()
        finally:
            self.pollers_live -= 1

    async def outcomes(self) -> AsyncIterator[Outcome]:
        while self._pending > 0:
            outcome = await self._recv.receive()
            self._pending -= 1
            yield outcome

    async def create(self, kind: TaskKind, params: Mapping[str, Any], key: str) -> str | None:
        kwargs = dict(params)
        if kind == "analyze":
            created = await self._analyze.create(**kwargs, idempotency_key=key)
            return created.task_id
        if kind == "embed_v1":
            video_file = kwargs.get("video_file")
            if isinstance(video_file, str):  # a manifest names a local file by its path
                kwargs["video_file"] = Path(video_file)
            return (await self._embed_v1.create(**kwargs)).id
        return (await self._embed_v2.create(**kwargs)).id

    async def upload(
        self, path: str, upload_id: str | None, on_session: Callable[[str], None]
    ) -> Asset:
        return await self._uploads.upload_file(
            path,
            upload_id=upload_id,
            on_session=on_session,
            timeout=self._timeout,
            poll_interval=self._poller_options.get("poll_interval"),
            max_poll_interval=self._poller_options.get("max_poll_interval"),
        )

    async def listing(self, kind: TaskKind, start: datetime, end: datetime) -> AsyncIterator[Any]:
        resource = self._embed_v2 if kind == "embed_v2" else self._embed_v1
        async for item in resource.list(started_at=start, ended_at=end, page_limit=_LIST_PAGE):
            yield item
