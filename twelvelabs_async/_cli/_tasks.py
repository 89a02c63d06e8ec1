"""``tasks list`` and ``tasks get``."""

from __future__ import annotations

import argparse
import sys
from contextlib import aclosing
from datetime import datetime, timezone
from typing import Any

import msgspec

from ._common import (
    CLI_NAMES,
    EXIT_OK,
    encode,
    fail,
    make_client,
    plural,
    printable,
    resource_for,
    stderr_line,
    write_line,
)

__all__ = ["tasks_get", "tasks_list"]

_EMBED_ONLY = ("started_at", "ended_at")
_ANALYZE_ONLY = ("video_url", "asset_id", "analysis_mode")


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _columns(kind: str) -> list[tuple[str, int]]:
    if kind == "analyze":
        return [
            ("ID", 24),
            ("STATUS", 10),
            ("CREATED (UTC)", 19),
            ("COMPLETED (UTC)", 19),
            ("MODE", 19),
            ("CUSTOM_ID", 0),
        ]
    return [("ID", 24), ("STATUS", 10), ("CREATED (UTC)", 19), ("UPDATED (UTC)", 19), ("MODEL", 0)]


def _cells(kind: str, item: Any) -> list[str]:
    if kind == "analyze":
        params = item.request_params
        return [
            item.task_id,
            item.status or "-",
            _when(item.created_at),
            _when(item.completed_at),
            (params.analysis_mode if params is not None else None) or "-",
            item.custom_id or "-",
        ]
    return [
        item.id or "-",
        item.status or "-",
        _when(item.created_at),
        _when(item.updated_at),
        item.model_name or "-",
    ]


def _row(columns: list[tuple[str, int]], cells: list[str]) -> str:
    # Every cell is the server's string: escaped, so that none can drive the terminal.
    parts = [
        printable(cell).ljust(width) if width else printable(cell)
        for (_, width), cell in zip(columns, cells, strict=True)
    ]
    return "  ".join(parts).rstrip()


async def tasks_list(args: argparse.Namespace) -> int:
    """Print tasks newest first: a table, or one JSON object per line with ``--json``."""
    kind = args.kind
    wrong = _EMBED_ONLY if kind == "analyze" else _ANALYZE_ONLY
    for name in wrong:
        if getattr(args, name, None) is not None:
            flag = "--" + name.replace("_", "-")
            fail(f"{flag} does not apply to {CLI_NAMES[kind]} tasks")
    filters: dict[str, Any] = {"status": args.status, "page_limit": args.page_limit}
    if kind == "analyze":
        filters.update(
            video_url=args.video_url, asset_id=args.asset_id, analysis_mode=args.analysis_mode
        )
    else:
        filters.update(started_at=args.started_at, ended_at=args.ended_at)
    out = sys.stdout
    columns = _columns(kind)
    count = 0
    async with make_client(args) as client:
        paginator = resource_for(client, kind).list(**filters)
        if not args.json:
            write_line(out, _row(columns, [name for name, _ in columns]))
        async with aclosing(paginator.pages()) as pages:
            async for page in pages:
                lines = []
                for item in page.items:
                    if args.limit is not None and count >= args.limit:
                        break
                    count += 1
                    if args.json:
                        lines.append(encode(item).decode())
                    else:
                        lines.append(_row(columns, _cells(kind, item)))
                if lines:
                    write_line(out, "\n".join(lines))
                if args.limit is not None and count >= args.limit:
                    break
    if not args.json:
        stderr_line(plural(count, "task"))
    return EXIT_OK


async def tasks_get(args: argparse.Namespace) -> int:
    """Print one task as JSON (indented); a missing task is an error (exit code 1)."""
    async with make_client(args) as client:
        task = await resource_for(client, args.kind).retrieve(args.task_id)
    write_line(sys.stdout, msgspec.json.format(encode(task), indent=2).decode())
    return EXIT_OK
