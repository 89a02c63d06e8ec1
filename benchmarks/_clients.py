"""The three clients under test, behind one small interface.

* ``ours``: ``twelvelabs_async.AsyncTwelveLabs`` with default settings.
* ``sdk``: the official ``twelvelabs.AsyncTwelveLabs`` (1.3.6) with ``base_url=`` pointed at the
  fake and default settings (its own ``httpx.AsyncClient``).
* ``raw``: the practical limit: one ``aiohttp.ClientSession`` and ``msgspec`` decoding into
  structs with the same fields as ours, nothing else (no retries, timeouts beyond aiohttp's
  defaults, hooks or error mapping).
* ``list``: ``raw`` decoding vectors to ``list[float]`` (what everyone kept before float32
  vectors; scenarios d and h).

Each module is imported only by the worker process measuring that client, so one client's
imports never weigh on another's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

API_KEY = "bench-key"


class Client:
    """What a scenario needs from a client."""

    name = "?"

    async def open(self, base_url: str, concurrency: int) -> None:
        raise NotImplementedError

    async def retrieve(self, task_id: str) -> str:
        """Retrieve one embed-v2 task; return its status."""
        raise NotImplementedError

    async def fetch(self, task_id: str) -> Any:
        """Retrieve one embed-v2 task; return the decoded task (scenario h keeps them)."""
        raise NotImplementedError

    def list_ids(self, page_limit: int) -> AsyncIterator[str]:
        """Every embed-v2 task id, across all pages."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


# --- ours -------------------------------------------------------------------------------------


class Ours(Client):
    name = "ours"

    async def open(self, base_url: str, concurrency: int) -> None:
        from twelvelabs_async import AsyncTwelveLabs

        self.client = AsyncTwelveLabs(api_key=API_KEY, base_url=base_url)
        self.tasks = self.client.embed.v2.tasks

    async def retrieve(self, task_id: str) -> str:
        task = await self.tasks.retrieve(task_id)
        return task.status

    async def fetch(self, task_id: str) -> Any:
        return await self.tasks.retrieve(task_id)

    async def list_ids(self, page_limit: int) -> AsyncIterator[str]:
        async for item in self.tasks.list(page_limit=page_limit):
            yield item.id or ""

    async def close(self) -> None:
        await self.client.aclose()


# --- the official SDK -------------------------------------------------------------------------


class Sdk(Client):
    name = "sdk"

    async def open(self, base_url: str, concurrency: int) -> None:
        from twelvelabs import AsyncTwelveLabs

        self.client = AsyncTwelveLabs(api_key=API_KEY, base_url=base_url)
        self.tasks = self.client.embed.v_2.tasks

    async def retrieve(self, task_id: str) -> str:
        task = await self.tasks.retrieve(task_id)
        return str(task.status)

    async def list_ids(self, page_limit: int) -> AsyncIterator[str]:
        pager = await self.tasks.list(page_limit=page_limit)
        async for item in pager:
            yield item.id or ""

    async def close(self) -> None:
        # The SDK has no close(); close its httpx client by hand so the process exits quietly.
        wrapper = getattr(self.client, "_client_wrapper", None)
        http = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
        if http is not None:
            await http.aclose()


# --- raw aiohttp + msgspec --------------------------------------------------------------------


def raw_types() -> tuple[Any, Any]:
    """The structs the raw loop decodes into: the library's own wire structs, so the comparison
    measures the client machinery around the same msgspec decoding (imported on demand, so
    that no client's process carries another's imports)."""
    from twelvelabs_async.types import EmbeddingTask, MediaEmbeddingTask, TaskPage

    return EmbeddingTask, TaskPage[MediaEmbeddingTask]


class _ListData(msgspec.Struct, kw_only=True, omit_defaults=True):
    embedding: list[float]
    embedding_uncertainty: list[float] | None = None
    embedding_option: str | None = None
    embedding_scope: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    start_page_number: int | None = None
    end_page_number: int | None = None
    quadrant: str | None = None
    chunk_index: int | None = None


class _ListTask(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str = msgspec.field(name="_id")
    status: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    data: list[_ListData] | None = None
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def list_types() -> Any:
    """An Embed v2 task struct whose vectors decode to ``list[float]``: what this library (and
    a plain msgspec loop) kept before vectors became float32. Same fields as ``EmbeddingTask``
    apart from the vector types (nested objects as dicts)."""
    return _ListTask


class Raw(Client):
    name = "raw"

    async def open(self, base_url: str, concurrency: int) -> None:
        import aiohttp

        self.base = base_url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(concurrency, 1)),
            headers={"x-api-key": API_KEY},
        )
        task_type, page_type = raw_types()
        self.task_decoder = msgspec.json.Decoder(task_type)
        self.page_decoder = msgspec.json.Decoder(page_type)

    async def retrieve(self, task_id: str) -> str:
        async with self.session.get(f"{self.base}/embed-v2/tasks/{task_id}") as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
        return self.task_decoder.decode(body).status

    async def fetch(self, task_id: str) -> Any:
        async with self.session.get(f"{self.base}/embed-v2/tasks/{task_id}") as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
        return self.task_decoder.decode(body)

    async def list_ids(self, page_limit: int) -> AsyncIterator[str]:
        """Sequential: page after page, stopping at ``total_page`` (no prefetch)."""
        page = 1
        url = f"{self.base}/embed-v2/tasks"
        limit = str(page_limit)
        while True:
            async with self.session.get(url, params={"page": str(page), "page_limit": limit}) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
            decoded = self.page_decoder.decode(body)
            items = decoded.data or []
            for item in items:
                yield item.id or ""
            info = decoded.page_info
            if info is None or info.total_page is None or page >= info.total_page or not items:
                return
            page += 1

    async def close(self) -> None:
        await self.session.close()
        await asyncio.sleep(0)


class RawList(Raw):
    """The plain loop decoding vectors to ``list[float]`` (scenario h's baseline)."""

    name = "list"

    async def open(self, base_url: str, concurrency: int) -> None:
        await super().open(base_url, concurrency)
        self.task_decoder = msgspec.json.Decoder(list_types())


CLIENTS: dict[str, type[Client]] = {"ours": Ours, "sdk": Sdk, "raw": Raw, "list": RawList}


def sdk_available() -> bool:
    """Whether the official SDK can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("twelvelabs") is not None
