"""Run the fake TwelveLabs API standalone: ``python -m twelvelabs_async.testing --port 0``.

Prints exactly one line, the base URL (``http://127.0.0.1:<port>/v1.3``), once
the server listens, and stops cleanly on SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from typing import cast

from .._version import __version__
from ._server import FakeTwelveLabs, standalone_finish_after_polls
from ._store import KINDS, TaskKind

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m twelvelabs_async.testing",
        description="Serve a fake TwelveLabs API (v1.3 task endpoints) on 127.0.0.1.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    p.add_argument("--api-key", default=None, help="only accept this key (default: any)")
    p.add_argument("--seed-tasks", type=int, default=0, help="tasks to create at startup")
    p.add_argument("--kind", choices=KINDS, default="embed_v2", help="kind of seeded tasks")
    p.add_argument(
        "--finish-after-polls",
        type=int,
        default=None,
        help="polls until a task is final (default 2, or none if --finish-after-seconds)",
    )
    p.add_argument(
        "--finish-after-seconds", type=float, default=None, help="seconds until a task is final"
    )
    p.add_argument("--embedding-dim", type=int, default=1024)
    p.add_argument("--segments", type=int, default=4, help="embeddings per ready task")
    p.add_argument("--rate-limit-per-minute", type=int, default=600)
    p.add_argument("--enforce-rate-limit", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="seed for ids and vectors")
    return p


async def _serve(args: argparse.Namespace) -> None:
    polls = standalone_finish_after_polls(args.finish_after_polls, args.finish_after_seconds)
    fake = FakeTwelveLabs(
        args.api_key,
        port=args.port,
        rate_limit_per_minute=args.rate_limit_per_minute,
        enforce_rate_limit=args.enforce_rate_limit,
        embedding_dim=args.embedding_dim,
        segments=args.segments,
        seed=args.seed,
        default_finish_after_polls=polls,
        default_finish_after_seconds=args.finish_after_seconds,
    )

    async def announce() -> None:
        if args.seed_tasks:
            fake.add_tasks(cast(TaskKind, args.kind), args.seed_tasks)
        sys.stdout.write(fake.base_url + "\n")
        sys.stdout.flush()

    await fake.serve_until_signalled(announce)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
