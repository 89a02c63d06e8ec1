"""argparse value types shared by the command line and the fake server's flags.

argparse and the kind names only: building a parser must load neither the client nor the fake
server (nor aiohttp).
"""

from __future__ import annotations

import argparse
from typing import Final

from ._types import TaskKind

__all__ = ["KIND_NAMES", "kind_arg", "parse_kind", "positive_int"]

KIND_NAMES: Final[dict[str, TaskKind]] = {
    "embed-v2": "embed_v2",
    "embed-v1": "embed_v1",
    "analyze": "analyze",
}
"""Command-line spelling -> :data:`TaskKind`."""


def parse_kind(value: str) -> TaskKind | None:
    """``embed_v2`` / ``embed-v2`` / ``embed_v1`` / ``embed-v1`` / ``analyze``, else ``None``."""
    return KIND_NAMES.get(value.strip().lower().replace("_", "-"))


def kind_arg(value: str) -> TaskKind:
    """argparse ``type=``: ``embed-v2`` / ``embed-v1`` / ``analyze`` (``_`` also accepted)."""
    kind = parse_kind(value)
    if kind is None:
        raise argparse.ArgumentTypeError(
            f"invalid kind {value!r} (choose from {', '.join(KIND_NAMES)})"
        )
    return kind


def positive_int(value: str) -> int:
    """argparse ``type=``: an integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return number
