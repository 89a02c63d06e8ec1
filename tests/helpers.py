"""Helpers shared by the test modules: tiny real aiohttp servers for endpoints the fake API does
not offer, a raw TCP server for malformed HTTP, a view of the asyncio tasks a client left
behind, and the command line run as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
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


class RawServer:
    """A raw TCP server on 127.0.0.1 for responses aiohttp.web cannot produce (bad framing,
    oversized headers, a bad status line). ``requests`` holds each request head as received."""

    def __init__(self, respond: Callable[[int], bytes | None], delay: float = 0.0) -> None:
        self._respond = respond
        self._delay = delay
        self.requests: list[bytes] = []
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: several requests may come on one connection
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                self.requests.append(head)
                if self._delay:
                    await asyncio.sleep(self._delay)
                answer = self._respond(len(self.requests) - 1)
                if answer is None:  # drop the connection without an answer
                    return
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_raw(
    respond: Callable[[int], bytes | None], *, delay: float = 0.0
) -> AsyncIterator[RawServer]:
    """Serve ``respond(n)`` (the raw bytes answering request number ``n``, 0-based; ``None``
    drops the connection), ``delay`` seconds after each request arrived, on 127.0.0.1; yields
    the :class:`RawServer` with its root ``url``."""
    server = RawServer(respond, delay)
    listener = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listener.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(listener.wait_closed(), 1.0)


class InFlight:
    """Counts a client's requests in flight through its hooks; ``peak`` is the most at once."""

    def __init__(self, client: Any) -> None:
        self.now = self.peak = 0
        client.hooks.on_request.append(self._sent)
        client.hooks.on_response.append(self._answered)

    def _sent(self, method: str, path: str, attempt: int) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def _answered(self, event: object) -> None:
        self.now -= 1


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
