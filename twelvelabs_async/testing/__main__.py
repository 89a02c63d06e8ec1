"""Run the fake TwelveLabs API standalone: ``python -m twelvelabs_async.testing --port 0``.

The flags and the output are those of ``twelvelabs-async fake-server`` (see ``_fake_args``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from .._fake_args import add_fake_server_arguments
from .._version import __version__
from ._command import serve

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m twelvelabs_async.testing",
        description="Serve a fake TwelveLabs API on 127.0.0.1 and print its base URL.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_fake_server_arguments(parser)
    args = parser.parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    except OSError as exc:
        sys.stderr.write(f"fake server: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
