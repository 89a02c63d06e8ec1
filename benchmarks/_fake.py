"""The fake TwelveLabs server for benchmarks, in its own process, with a control pipe.

``python -m benchmarks._fake --port 0 [--segments 60 --embedding-dim 1024 ...]`` serves the
same fake as ``python -m twelvelabs_async.testing`` (it builds the same ``FakeTwelveLabs``) and,
like it, prints the base URL on one line once it listens. It then reads JSON commands on stdin,
one per line, and answers each with one JSON line on stdout:

* ``{"op": "seed", "count": N, "status": "ready", "finish_after_seconds": "inf"}`` creates
  embed-v2 tasks and answers ``{"ids": [...]}``;
* ``{"op": "final_at"}`` answers ``{"final_at": {task_id: seconds}}``, when each task became
  final on the server's monotonic clock;
* ``{"op": "stats"}`` answers ``{"requests": total, "routes": {...}, "cpu": seconds}`` (the
  server's own request counter and its process CPU time);
* ``{"op": "uploads", "keep_bytes": false, "chunk_size": N}`` configures multipart uploads
  (part size; the storage keeps only each part's MD5) and answers ``{"chunk_size": N}``;
* ``{"op": "quit"}`` (or end of input) stops the server.

The standalone CLI exposes no request counter, so this wrapper is how the harness reads request
counts from the server side for every client alike, without hooks in any client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from typing import Any

from twelvelabs_async.testing import FakeTwelveLabs

UNLIMITED_RATE = 10**9
"""No benchmark is about rate limits: a limit no run reaches keeps the pollers unpaused."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks._fake")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--embedding-dim", type=int, default=1024)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    return p


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return math.inf if value == "inf" else float(value)


def _command(fake: FakeTwelveLabs, line: str) -> dict[str, Any] | None:
    cmd = json.loads(line)
    op = cmd.get("op")
    if op == "seed":
        polls = cmd.get("finish_after_polls")
        seconds = cmd.get("finish_after_seconds")
        if isinstance(seconds, list):  # one value per task
            values = [_number(v) for v in seconds]
            ids = fake.add_tasks("embed_v2", len(values), finish_after_seconds=lambda i: values[i])
        else:
            ids = fake.add_tasks(
                "embed_v2",
                int(cmd["count"]),
                status=cmd.get("status"),
                finish_after_polls=None if polls is None else int(polls),
                finish_after_seconds=_number(seconds),
            )
        return {"ids": ids}
    if op == "final_at":
        # When each task became final, on this process's time.monotonic() clock (the
        # system-wide CLOCK_MONOTONIC on Linux, so comparable with another process's).
        return {"final_at": {rec.id: rec.final_at for rec in fake.tasks("embed_v2")}}
    if op == "stats":
        by_route = {f"{m} {t}": n for (m, t), n in fake.app.route_counts.items()}
        return {"requests": fake.requests_total, "routes": by_route, "cpu": time.process_time()}
    if op == "uploads":
        # Multipart benchmarks: the storage keeps only each part's MD5, never the bytes.
        fake.assets.keep_bytes = bool(cmd.get("keep_bytes", False))
        fake.assets.chunk_size = int(cmd.get("chunk_size", fake.assets.chunk_size))
        return {"chunk_size": fake.assets.chunk_size}
    if op == "quit":
        return None
    return {"error": f"unknown op {op!r}"}


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeTwelveLabs(
        port=args.port,
        rate_limit_per_minute=UNLIMITED_RATE,
        embedding_dim=args.embedding_dim,
        segments=args.segments,
        seed=args.seed,
        request_log_size=16,
    )
    loop = asyncio.get_running_loop()
    async with fake:
        sys.stdout.write(fake.base_url + "\n")
        sys.stdout.flush()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            if not line.strip():
                continue
            reply = _command(fake, line)
            if reply is None:
                return
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def main() -> int:
    asyncio.run(_serve(_parser().parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
