"""``fake-server``: run the built-in fake TwelveLabs API until Ctrl-C (the flags live in
``testing._command``, shared with ``python -m twelvelabs_async.testing``)."""

from __future__ import annotations

import argparse

from ..testing._command import serve
from ._common import EXIT_OK, EXIT_USAGE, CliError

__all__ = ["fake_server"]


async def fake_server(args: argparse.Namespace) -> int:
    """Serve the fake API on 127.0.0.1; print its base URL on stdout; stop on SIGINT/SIGTERM."""
    try:
        await serve(args)
    except OSError as exc:
        raise CliError(f"fake server: {exc}", EXIT_USAGE) from None
    return EXIT_OK
