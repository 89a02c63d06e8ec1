"""``fake-server``: run the built-in fake TwelveLabs API until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

import anyio

from ..testing import FakeTwelveLabs
from ..testing._server import standalone_finish_after_polls
from ._common import CLI_NAMES, EXIT_OK, EXIT_USAGE, CliError, plural, stderr_line, write_line

__all__ = ["fake_server"]


async def fake_server(args: argparse.Namespace) -> int:
    """Serve the fake API on 127.0.0.1; print its base URL on stdout; stop on SIGINT/SIGTERM."""
    polls = standalone_finish_after_polls(args.finish_after_polls, args.finish_after_seconds)
    fake = FakeTwelveLabs(
        args.api_key,
        port=args.port,
        rate_limit_per_minute=args.rate_limit_per_minute,
        default_finish_after_polls=polls,
        default_finish_after_seconds=args.finish_after_seconds,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )

    async def announce() -> None:
        seeded: list[str] = []
        if args.seed_tasks:
            seeded = fake.add_tasks(args.kind, args.seed_tasks)
        if args.ids_out:
            try:
                await anyio.Path(args.ids_out).write_text("".join(i + "\n" for i in seeded))
            except OSError as exc:
                raise CliError(f"cannot write --ids-out: {exc}", EXIT_USAGE) from None
        write_line(sys.stdout, fake.base_url)
        if seeded:
            stderr_line(f"seeded {plural(len(seeded), CLI_NAMES[args.kind] + ' task')}")
        stderr_line(
            f"export TWELVELABS_BASE_URL={fake.base_url} TWELVELABS_API_KEY={fake.api_key}"
            "  # Ctrl-C stops the server"
        )

    try:
        await fake.serve_until_signalled(announce)
    except OSError as exc:  # announce() turns its own OSErrors into CliError
        raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc}", EXIT_USAGE) from None
    return EXIT_OK
