"""Helpers shared by the test modules: tiny real aiohttp servers for endpoints the fake API does
not offer, a view of the asyncio tasks a client left behind, and the command line run as a
subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from twelvelabs_async.testing import FakeTwelveLabs


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


# --- the command line, run as a subprocess -----------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def cli_env(fake: FakeTwelveLabs | None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWELVELABS_", "TWELVE_LABS_", "COVERAGE"))
    }
    if fake is not None:
        env["TWELVELABS_BASE_URL"] = fake.base_url
        env["TWELVELABS_API_KEY"] = fake.api_key
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-W", "error", "-m", "twelvelabs_async", *args]


async def cli(
    fake: FakeTwelveLabs | None,
    *args: str,
    stdin: bytes = b"",
    timeout: float = 30.0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run the command line to completion (bounded) while this loop keeps serving the fake."""
    with anyio.fail_after(timeout):
        done = await anyio.run_process(
            command(*args),
            input=stdin,
            check=False,
            cwd=cwd,
            env=env if env is not None else cli_env(fake),
        )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())
