"""``watch``: follow tasks until each is final, appending each outcome to a results file."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import IO, Any

import msgspec

from .._poller import Outcome, Poller
from .._polling import PollerOptions, options_from
from .._types import TaskKind
from ._common import (
    CLI_NAMES,
    EXIT_NOT_READY,
    EXIT_OK,
    EXIT_USAGE,
    AnyTaskResource,
    CliError,
    fail,
    make_client,
    outcome_record,
    plural,
    printable,
    resource_for,
    stderr_line,
    unique,
)
from ._progress import Display, Snapshot, follow, open_display
from ._results import ResultsFile

__all__ = ["UNFINISHED", "parse_id_lines", "watch"]

UNFINISHED: dict[TaskKind, tuple[str, ...]] = {
    "embed_v2": ("processing",),
    "embed_v1": ("processing",),
    "analyze": ("queued", "pending", "processing"),
}
"""What ``--status unfinished`` lists, per kind."""

_ID_FIELDS = ("task_id", "_id", "id")
RECHECKED = frozenset({"timed_out", "not_found"})
"""Recorded outcomes that are not the task's own final status: a rerun watches them again."""


def parse_id_lines(lines: Iterable[str], source: str) -> list[str]:
    """Task ids from text: one id per line (the first word), or JSON objects with ``task_id``,
    ``_id`` or ``id`` (e.g. the output of ``tasks list --json``). Blank lines and ``#``
    comments are skipped."""
    ids: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError:
                fail(f"{source}, line {number}: not valid JSON")
            found = next((obj[k] for k in _ID_FIELDS if isinstance(obj, dict) and obj.get(k)), None)
            if not isinstance(found, str):
                fail(f"{source}, line {number}: no task_id/_id/id field")
            ids.append(found)
        else:
            ids.append(line.split()[0])
    return ids


def _read_ids(args: argparse.Namespace) -> list[str]:
    ids: list[str] = []
    from_stdin = False
    for value in args.ids:
        if value == "-":
            from_stdin = True
        else:
            ids.append(value)
    if args.ids_file == "-":
        from_stdin = True
    elif args.ids_file is not None:
        try:
            with open(args.ids_file, encoding="utf-8") as handle:
                ids += parse_id_lines(handle, args.ids_file)
        except OSError as exc:
            raise CliError(f"cannot read --ids-file: {exc}", EXIT_USAGE) from None
    if (
        not ids
        and not from_stdin
        and args.ids_file is None
        and args.status is None
        and not sys.stdin.isatty()
    ):
        from_stdin = True  # `... | twelvelabs-async watch KIND`
    if from_stdin:
        ids += parse_id_lines(sys.stdin, "stdin")
    return ids


def _statuses(kind: TaskKind, value: str) -> list[str]:
    statuses: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if part == "unfinished":
            statuses += UNFINISHED[kind]
        elif part:
            statuses.append(part)
    return unique(statuses)


async def _listed_ids(resource: AnyTaskResource, statuses: list[str]) -> list[str]:
    ids: list[str] = []
    for status in statuses:
        async for item in resource.list(status=status, page_limit=50):
            task_id = getattr(item, "id", None)
            if isinstance(task_id, str) and task_id:
                ids.append(task_id)
    return ids


class _Sink:
    """Where outcome lines go: the results file, or stdout."""

    def __init__(self, results: ResultsFile | None, display: Display) -> None:
        self.results = results
        self.display = display
        self.stdout: IO[str] = sys.stdout  # captured before any display redirects it

    def write(self, line: bytes) -> None:
        if self.results is not None:
            self.results.append(line)
        elif self.display.live and self.stdout.isatty():
            self.display.log(printable(line.decode().rstrip("\n")))
        else:
            self.stdout.write(line.decode())
            self.stdout.flush()


async def watch(args: argparse.Namespace) -> int:
    """Watch tasks of one kind until each is final; exit 0 only if all ended ``ready``."""
    kind: TaskKind = args.kind
    ids = _read_ids(args)
    if not ids and args.status is None:
        fail(
            "no task ids: give them as arguments, with --ids-file FILE (or - for stdin), "
            "on stdin, or use --status"
        )
    results = ResultsFile(args.out) if args.out else None
    started = time.monotonic()
    if results is not None:
        results.open()
    try:
        async with make_client(args) as client:
            resource = resource_for(client, kind)
            if args.status is not None:
                ids += await _listed_ids(resource, _statuses(kind, args.status))
            else:
                # Fail fast on a wrong key or URL instead of polling into the deadline.
                await resource.list_page({"page": "1", "page_limit": "1"})
            ids = unique(ids)
            return await _watch(args, client, resource, kind, ids, results, started)
    finally:
        if results is not None:
            results.close()


async def _watch(
    args: argparse.Namespace,
    client: Any,
    resource: AnyTaskResource,
    kind: TaskKind,
    ids: list[str],
    results: ResultsFile | None,
    started: float,
) -> int:
    counts: Counter[str] = Counter()
    todo: list[str] = []
    for task_id in ids:
        status = results.status_of(kind, task_id) if results is not None else None
        if results is not None and results.has(kind, task_id) and status not in RECHECKED:
            counts[status or "unknown"] += 1
        else:
            # Never recorded, or recorded with the poller's own verdict (timed out, not
            # found): watch it (again); the new line is appended and wins on the next run.
            todo.append(task_id)
    skipped = len(ids) - len(todo)
    if results is not None and results.repaired:
        stderr_line(f"note: added the missing newline after the last line of {results.path}")
    name = CLI_NAMES[kind]
    if results is not None and results.dropped_partial:
        stderr_line(
            f"note: cut off a partial last line ({results.dropped_partial} bytes) of {results.path}"
        )
    note = f" ({skipped:,} already in {results.path})" if results is not None and skipped else ""
    stderr_line(f"watching {plural(len(todo), name + ' task')}{note}")

    display = open_display(args.progress, sys.stderr, interval=args.progress_interval)
    sink = _Sink(results, display)
    poller: Poller | None = None

    def snapshot() -> Snapshot:
        stats = poller.stats if poller is not None else None
        return Snapshot(
            total=len(ids),
            counts=dict(counts),
            pending=dict(stats.pending_by_status) if stats else {},
            requests=stats.requests if stats else 0,
        )

    requests = 0
    if todo:
        async with client.poller(options=poller_options(args)) as poller:
            poller.add(resource, todo)

            def record(outcome: Outcome) -> None:
                sink.write(outcome_record(outcome))
                counts[outcome.status] += 1

            await follow(poller, display, len(ids), snapshot, record)
            requests = poller.stats.requests
    elapsed = time.monotonic() - started
    final = snapshot()
    per_task = f" ({requests / len(todo):.2f} per task)" if todo else ""
    stderr_line(
        f"done: {plural(len(ids), name + ' task')} in {elapsed:.1f}s: "
        f"{final.outcome_text() or 'nothing to do'}; {plural(requests, 'status request')}"
        f"{per_task}"
    )
    if results is not None:
        stderr_line(f"results: {results.path} ({plural(results.written, 'new line')})")
    not_ready = [status for status, count in counts.items() if count and status != "ready"]
    return EXIT_NOT_READY if not_ready else EXIT_OK


def poller_options(args: argparse.Namespace) -> PollerOptions:
    """The poller's knobs from ``watch``'s flags (the defaults where a flag is not given)."""
    return options_from(
        None,
        timeout=args.timeout,
        max_concurrency=args.max_concurrency,
        requests_per_minute=args.requests_per_minute,
        poll_interval=args.poll_interval,
        max_poll_interval=args.max_poll_interval,
        target_delay=args.target_delay,
        requests_per_task=args.requests_per_task,
    )
