"""Where a bulk job's requests go: creates and lists through the client's resources, status
checks through a poller, every request of all three paced by one :class:`RequestGate`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from .._poller import Outcome, Poller
from .._ratelimit import RequestGate
from .._transport import RequestOptions, Response, Transport
from .._types import TaskKind
from ..resources import AnalyzeTasks, EmbedV1Tasks, EmbedV2Tasks
from ..resources._base import TaskResource

if TYPE_CHECKING:
    from .._client import AsyncTwelveLabs

__all__ = ["Backend", "HttpBackend"]

_LIST_PAGE = 50


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
    """The real thing: ``client``'s resources for creates and lists, a poller for checks."""

    def __init__(self, client: AsyncTwelveLabs, gate: RequestGate, **poller_options: Any) -> None:
        self.gate = gate
        self._client = client
        transport = cast(Transport, _GatedTransport(client._transport, gate))
        self._embed_v2 = EmbedV2Tasks(transport)
        self._embed_v1 = EmbedV1Tasks(transport)
        self._analyze = AnalyzeTasks(transport)
        self._poller: Poller = client.poller(gate=gate, **poller_options)
        self._watched: dict[str, TaskResource[Any, Any, Any]] = {
            "embed_v2": client.embed.v2.tasks,
            "embed_v1": client.embed.v1.tasks,
            "analyze": client.analyze.tasks,
        }

    async def __aenter__(self) -> HttpBackend:
        await self._poller.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._poller.__aexit__(*exc)

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

    async def listing(self, kind: TaskKind, start: datetime, end: datetime) -> AsyncIterator[Any]:
        resource = self._embed_v2 if kind == "embed_v2" else self._embed_v1
        async for item in resource.list(started_at=start, ended_at=end, page_limit=_LIST_PAGE):
            yield item

    def watch(self, kind: TaskKind, task_id: str) -> None:
        self._poller.add(self._watched[kind], task_id)

    def outcomes(self) -> AsyncIterator[Outcome]:
        return self._poller.as_completed()

    @property
    def poller(self) -> Poller:
        """The poller checking the tasks."""
        return self._poller
