"""Helpers shared by the test modules: tiny real aiohttp servers for endpoints the fake API does
not offer, and a view of the asyncio tasks a client left behind."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


@contextlib.asynccontextmanager
async def serve_app(
    app: web.Application, *, sock: socket.socket | None = None, **runner_options: Any
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port, or ``sock``) and yield its root URL,
    ``http://127.0.0.1:<port>``; everything is closed on exit."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1, **runner_options)
    await runner.setup()
    try:
        site: web.BaseSite = (
            web.TCPSite(runner, "127.0.0.1", 0) if sock is None else web.SockSite(runner, sock)
        )
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def catch_all(handler: Any) -> web.Application:
    """An application sending every method and path to ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def client_tasks() -> set[asyncio.Task[Any]]:
    """Pending asyncio tasks, minus aiohttp servers' own connection handlers."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    }
