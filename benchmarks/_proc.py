"""Subprocess plumbing: the fake server process and one-shot worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the ``benchmarks`` package (the repository root)."""

_SCRUBBED = ("TWELVELABS_BASE_URL", "TWELVELABS_API_KEY", "TWELVE_LABS_API_KEY")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every child: ``benchmarks`` importable, no TwelveLabs variables (the
    official SDK lets ``TWELVELABS_BASE_URL`` override ``base_url``)."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    env.update(extra)
    return env


class BenchError(RuntimeError):
    """A child process failed."""


def _readline(proc: subprocess.Popen[str], stderr: IO[str], what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        stderr.seek(0)
        tail = stderr.read()[-4000:]
        raise BenchError(f"{what} exited ({proc.returncode}) without answering:\n{tail}")
    doc: dict[str, Any] = json.loads(line)
    return doc


class FakeServer:
    """``python -m benchmarks._fake`` in its own process; counters read over its stdin/stdout."""

    def __init__(self, *, segments: int = 4, embedding_dim: int = 1024) -> None:
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks._fake",
                "--port",
                "0",
                "--segments",
                str(segments),
                "--embedding-dim",
                str(embedding_dim),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().strip()
        if not url.startswith("http"):
            self.close()
            self._stderr.seek(0)
            raise BenchError(f"fake server did not start: {url!r} {self._stderr.read()[-2000:]}")
        self.base_url = url

    def _ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return _readline(self.proc, self._stderr, "fake server")

    def seed(self, count: int, **options: Any) -> list[str]:
        ids: list[str] = self._ask(op="seed", count=count, **options)["ids"]
        return ids

    def uploads(self, **options: Any) -> dict[str, Any]:
        return self._ask(op="uploads", **options)

    def stats(self) -> dict[str, Any]:
        return self._ask(op="stats")

    def final_at(self) -> dict[str, float | None]:
        final: dict[str, float | None] = self._ask(op="final_at")["final_at"]
        return final

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_worker(
    spec: dict[str, Any],
    server: FakeServer | None = None,
    *,
    extra_lines: list[str] | None = None,
    on_ready: Callable[[], list[str]] | None = None,
    timeout: float = 900.0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one ``benchmarks._worker`` measurement; add the server's counters around it.

    ``extra_lines`` go to the worker with its spec; ``on_ready()`` is called once the worker
    is set up, and the lines it returns are sent right after ``go``. ``env`` adds variables
    to the worker's environment.
    """
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed in finally)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        env=child_env(**(env or {})),
    )
    what = f"worker {spec.get('mode')}/{spec.get('client', '')}"
    watchdog = threading.Timer(timeout, proc.kill)  # a hung worker must not hang the run
    watchdog.daemon = True
    watchdog.start()
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec) + "\n")
        for line in extra_lines or ():
            proc.stdin.write(line + "\n")
        proc.stdin.flush()
        _readline(proc, stderr, what)  # {"ready": true}
        after_go = on_ready() if on_ready is not None else []
        before = server.stats() if server is not None else None
        proc.stdin.write("go\n")
        for line in after_go:
            proc.stdin.write(line + "\n")
        proc.stdin.flush()
        result = _readline(proc, stderr, what)
        if server is not None and before is not None:
            after = server.stats()
            result["server_requests"] = after["requests"] - before["requests"]
            result["server_cpu_s"] = after["cpu"] - before["cpu"]
        proc.wait(timeout=timeout)
        if proc.returncode:
            stderr.seek(0)
            raise BenchError(f"{what} failed ({proc.returncode}):\n{stderr.read()[-4000:]}")
        return result
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
