"""The fake server's one command line, shared by ``python -m twelvelabs_async.testing`` and
``twelvelabs-async fake-server``: the same flags (``_fake_args``), the same output.

stdout gets exactly one line, the base URL (``http://127.0.0.1:<port>/v1.3``), once the server
listens; hints go to stderr. SIGINT / SIGTERM stop the server cleanly.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from ._server import FakeTwelveLabs, standalone_finish_after_polls

__all__ = ["serve"]


async def serve(args: argparse.Namespace) -> None:
    """Serve until signalled. Raises ``OSError`` when the port cannot be bound or
    ``--ids-out`` cannot be written."""
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
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )

    async def announce() -> None:
        seeded = fake.add_tasks(args.kind, args.seed_tasks) if args.seed_tasks else []
        if args.ids_out:
            await anyio.Path(args.ids_out).write_text("".join(i + "\n" for i in seeded))
        sys.stdout.write(fake.base_url + "\n")
        sys.stdout.flush()
        if seeded:
            sys.stderr.write(f"seeded {len(seeded)} {args.kind} task(s)\n")
        # A key given on the command line is the user's secret: never echoed.
        key = "'<your --api-key>'" if args.api_key else fake.api_key
        sys.stderr.write(
            f"export TWELVELABS_BASE_URL={fake.base_url} TWELVELABS_API_KEY={key}"
            "  # Ctrl-C stops the server\n"
        )

    await fake.serve_until_signalled(announce)
