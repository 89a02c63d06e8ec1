"""``export``: a results file's embeddings as rows for a vector store."""

from __future__ import annotations

import argparse

from .._bulk import export_results
from ._common import EXIT_OK, CliError, plural, stderr_line

__all__ = ["export"]


async def export(args: argparse.Namespace) -> int:
    """Write one row per embedding segment (Parquet, or .npy + JSON lines)."""
    try:
        summary = export_results(args.results, args.out, format=args.format)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CliError(f"export failed: {exc}") from None
    files = ", ".join(str(path) for path in summary.files)
    stderr_line(
        f"exported {plural(summary.rows, 'segment')} of {plural(summary.tasks, 'task')} "
        f"({summary.format}, dimension {summary.dimension or '-'}): {files}"
    )
    return EXIT_OK
