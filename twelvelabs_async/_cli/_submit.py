"""``submit``: a manifest of inputs in, one results line per item out, resumable by rerunning.

The manifest is read twice: once to validate all of it (nothing is created if any line is
bad), then streamed into a :class:`~twelvelabs_async.BulkJob` whose SQLite state makes a rerun
pick up where the last run stopped.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from .._argtypes import kind_arg, parse_kind
from .._bulk import BulkItem, BulkJob, BulkResult
from .._bulk._state import StateInUseError
from .._types import TaskKind
from ..resources import AnalyzeTasks, EmbedV1Tasks, EmbedV2Tasks
from ._common import (
    EXIT_NOT_READY,
    EXIT_OK,
    CliError,
    encode,
    fail,
    format_counts,
    make_client,
    plural,
    stderr_line,
)
from ._progress import OUTCOME_ORDER, Display, PlainDisplay, Snapshot, open_display
from ._results import ResultsFile

__all__ = ["Manifest", "read_manifest", "submit"]

MAX_REPORTED = 20
"""Manifest problems listed before the rest are only counted."""

_CREATE_KEYWORDS: dict[str, frozenset[str]] = {
    kind: frozenset(
        name
        for name, param in inspect.signature(method).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
        and name not in ("timeout", "max_retries", "request_options", "idempotency_key")
    )
    for kind, method in (
        ("embed_v2", EmbedV2Tasks.create),
        ("embed_v1", EmbedV1Tasks.create),
        ("analyze", AnalyzeTasks.create),
    )
}
"""The body fields each kind's create accepts (``params`` keys)."""
_MEDIA_SOURCES = ("url", "base64_string", "asset_id", "path")


def _missing_input(kind: str, params: Mapping[str, Any]) -> str | None:
    """Why ``params`` cannot make a task of ``kind`` (``None`` if they can)."""
    if kind == "embed_v2":
        input_type = params.get("input_type")
        if not isinstance(input_type, str) or not input_type:
            return "params.input_type is missing"
        if not params.get("model_name"):
            return "params.model_name is missing"
        media = params.get(input_type)
        source = media.get("media_source") if isinstance(media, Mapping) else None
        if not isinstance(source, Mapping) or not any(source.get(k) for k in _MEDIA_SOURCES):
            return (
                f"params.{input_type}.media_source needs one of url, base64_string, asset_id, path"
            )
        return _missing_file(source.get("path"))
    if kind == "embed_v1":
        if not params.get("model_name"):
            return "params.model_name is missing"
        if not params.get("video_url") and not params.get("video_file"):
            return "params needs video_url or video_file"
        video_file = params.get("video_file")
        if video_file is not None and not isinstance(video_file, str):
            return "params.video_file must be a path"
        return None
    if not params.get("video") and not params.get("image"):
        return "params needs video or image"
    video = params.get("video")
    return _missing_file(video.get("path")) if isinstance(video, Mapping) else None


def _missing_file(path: Any) -> str | None:
    """Why a local file named by an item cannot be uploaded (``None``: it can, or none)."""
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        return "a local path must be a non-empty string"
    if not os.path.exists(path):
        return f"no such file: {path!r}"
    if os.path.isdir(path):
        return f"{path!r} is a directory"
    if os.path.getsize(path) == 0:
        return f"{path!r} is empty"
    return None


@dataclass(slots=True)
class Manifest:
    """A validated manifest: where it is, how it is read, how many items it holds."""

    path: str
    csv: bool
    default_kind: TaskKind | None
    model: str | None
    prompt: str | None
    items: int = 0

    def read(self) -> Iterator[BulkItem]:
        """The items, streamed from the file (call after validation)."""
        for _, item in self._parse(None):
            if item is not None:
                yield item

    def validate(self) -> list[str]:
        """Every problem, as ``"line N: ..."`` (empty if the manifest is good)."""
        problems: list[str] = []
        first_line: dict[str, int] = {}
        count = 0
        for number, item in self._parse(problems):
            if item is None:
                continue
            count += 1
            seen = first_line.setdefault(item.custom_id, number)
            if seen != number:
                problems.append(
                    f"line {number}: duplicate custom_id {item.custom_id!r} (also on line {seen})"
                )
        if not count and not problems:
            problems.append("no items (the manifest is empty)")
        self.items = count
        return problems

    def _parse(self, problems: list[str] | None) -> Iterator[tuple[int, BulkItem | None]]:
        def bad(number: int, message: str) -> tuple[int, None]:
            if problems is not None:
                problems.append(f"line {number}: {message}")
            return number, None

        if self.csv:
            yield from self._parse_csv(bad)
            return
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                line = raw.strip()
                if not line or line.startswith(b"#"):
                    continue
                try:
                    obj = msgspec.json.decode(line)
                except msgspec.DecodeError as exc:
                    yield bad(number, f"not valid JSON ({exc})")
                    continue
                if not isinstance(obj, dict):
                    yield bad(number, "not a JSON object")
                    continue
                yield self._item(number, obj, bad)

    def _item(self, number: int, obj: dict[str, Any], bad: Any) -> tuple[int, BulkItem | None]:
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return bad(number, "custom_id must be a non-empty string")  # type: ignore[no-any-return]
        raw_kind = obj.get("kind")
        kind: TaskKind | None
        if raw_kind is None:
            kind = self.default_kind
            if kind is None:
                return bad(number, "no kind (give it on the line or with --kind)")  # type: ignore[no-any-return]
        else:
            kind = parse_kind(raw_kind) if isinstance(raw_kind, str) else None
            if kind is None:
                return bad(  # type: ignore[no-any-return]
                    number, f"unknown kind {raw_kind!r} (embed_v2, embed_v1 or analyze)"
                )
        params = obj.get("params")
        if not isinstance(params, dict):
            return bad(number, "params must be a JSON object")  # type: ignore[no-any-return]
        unknown = sorted(set(params) - _CREATE_KEYWORDS[kind])
        if unknown:
            return bad(  # type: ignore[no-any-return]
                number, f"unknown {kind} parameter(s): {', '.join(unknown)}"
            )
        missing = _missing_input(kind, params)
        if missing is not None:
            return bad(number, f"missing input: {missing}")  # type: ignore[no-any-return]
        return number, BulkItem(custom_id, kind, params, obj.get("metadata"))

    def _parse_csv(self, bad: Any) -> Iterator[tuple[int, BulkItem | None]]:
        kind = self.default_kind
        with open(self.path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            names = [name.strip().lower() for name in header]
            if "custom_id" not in names or ("url" not in names and "path" not in names):
                yield bad(
                    1, "a CSV manifest needs a header with custom_id and url (or path) columns"
                )
                return
            if kind is None or not self.model:
                yield bad(1, "a CSV manifest needs --kind and --model")
                return
            if kind == "analyze" and not self.prompt:
                yield bad(1, "a CSV manifest of analyze items needs --prompt")
                return
            # A path column names local files (uploaded as assets first); else URLs.
            local = "url" not in names
            at_id, at_url = names.index("custom_id"), names.index("path" if local else "url")
            for row in reader:
                number = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) <= max(at_id, at_url):
                    yield bad(number, "too few columns")
                    continue
                custom_id, url = row[at_id].strip(), row[at_url].strip()
                if not custom_id:
                    yield bad(number, "custom_id is empty")
                    continue
                if not url:
                    yield bad(number, f"missing input: {'path' if local else 'url'} is empty")
                    continue
                missing = _missing_file(url) if local else None
                if missing is not None:
                    yield bad(number, f"missing input: {missing}")
                    continue
                yield number, BulkItem(custom_id, kind, _csv_params(kind, url, self, local))


def _csv_params(kind: TaskKind, url: str, manifest: Manifest, local: bool) -> dict[str, Any]:
    where = "path" if local else "url"
    if kind == "embed_v2":
        return {
            "input_type": "video",
            "model_name": manifest.model,
            "video": {"media_source": {where: url}},
        }
    if kind == "embed_v1":
        return {"model_name": manifest.model, "video_file" if local else "video_url": url}
    return {"video": {where: url}, "model_name": manifest.model, "prompt": manifest.prompt}


def read_manifest(args: argparse.Namespace) -> Manifest:
    """Validate the whole manifest, or exit with code 2 naming every bad line."""
    path = args.manifest
    is_csv = args.format == "csv" or (args.format == "auto" and path.lower().endswith(".csv"))
    manifest = Manifest(path, is_csv, args.kind, args.model, args.prompt)
    try:
        problems = manifest.validate()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"cannot read the manifest {path!r}: {exc}") from None
    if problems:
        shown = [f"{path}, {problem}" for problem in problems[:MAX_REPORTED]]
        more = len(problems) - len(shown)
        if more:
            shown.append(f"... and {plural(more, 'more problem')}")
        fail("bad manifest, nothing was created:\n  " + "\n  ".join(shown))
    return manifest


def result_record(result: BulkResult) -> bytes:
    """One RESULTS line: ``custom_id``, ``kind``, ``task_id``, ``status``, ``error``, ``task``
    (and ``metadata`` when the manifest line had some)."""
    record: dict[str, Any] = {
        "custom_id": result.custom_id,
        "kind": result.kind,
        "task_id": result.task_id,
        "status": result.status,
        "error": result.error,
    }
    if result.metadata is not None:
        record["metadata"] = result.metadata
    record["task"] = result.task
    return encode(record) + b"\n"


class _Progress:
    """Both phases on one line: created / running / settled, requests per item, ETA."""

    def __init__(self, display: Display, job: BulkJob, total: int) -> None:
        self.display = display
        self.job = job
        self.total = total
        self._last = 0.0  # when the last plain line was printed

    def snapshot(self) -> Snapshot:
        stats = self.job.stats
        new = stats.done - stats.earlier
        return Snapshot(
            total=self.total,
            counts=dict(stats.settled),
            pending={"creating": stats.sending, "running": stats.running},
            requests=stats.requests,
            requests_per_item=stats.requests / new if new > 0 else None,
        )

    def line(self) -> str:
        stats = self.job.stats
        elapsed = self.display.elapsed()
        done = stats.done
        new = done - stats.earlier
        parts = [
            f"[{elapsed:7.1f}s] created {stats.created + stats.reconciled:,}"
            + (f" (+{stats.reattached:,} resumed)" if stats.reattached else ""),
            f"creating {stats.sending:,}",
            f"running {stats.running:,}",
            f"settled {done:,}/{self.total:,}",
        ]
        outcome = format_counts([(s, stats.settled.get(s, 0)) for s in _order(stats.settled)])
        if outcome:
            parts.append(outcome)
        if new:
            parts.append(f"{stats.requests / new:.2f} requests/item")
            rate = new / elapsed if elapsed > 0 else 0.0
            if done < self.total and rate > 0:
                parts.append(f"ETA {(self.total - done) / rate:.0f}s")
        return " · ".join(parts)

    def update(self, *, force: bool = False) -> None:
        if isinstance(self.display, PlainDisplay):
            now = time.monotonic()
            if force or now - self._last >= self.display.interval:
                self._last = now
                self.display.log(self.line())
        else:
            self.display.update(self.snapshot(), force=force)

    async def refresh(self) -> None:
        period = 0.1 if self.display.live else max(min(self.display.interval, 1.0), 0.05)
        while True:
            await anyio.sleep(period)
            self.update()


def _order(settled: Mapping[str, int]) -> list[str]:
    extra = ("rejected", "unconfirmed")
    return [*OUTCOME_ORDER, *extra, *sorted(set(settled) - set(OUTCOME_ORDER) - set(extra))]


async def submit(args: argparse.Namespace) -> int:
    """Create a task per manifest item, watch them, append one line per item to --out."""
    manifest = read_manifest(args)
    state = args.state or f"{args.out}.state.sqlite"
    results = ResultsFile(args.out)
    results.open()
    started = time.monotonic()
    counts: Counter[str] = Counter()
    written_before = len(results.custom_ids)
    try:
        if results.dropped_partial:
            stderr_line(f"note: cut off a partial last line of {results.path}")
        if results.repaired:
            stderr_line(f"note: added the missing newline after the last line of {results.path}")
        stderr_line(
            f"submitting {plural(manifest.items, 'item')} from {manifest.path}"
            + (f" ({written_before:,} already in {results.path})" if written_before else "")
        )
        async with make_client(args) as client:
            job = BulkJob(
                client,
                manifest.read(),
                state=state,
                concurrency=args.concurrency,
                requests_per_minute=args.requests_per_minute,
                timeout=args.timeout,
                poll_interval=args.poll_interval,
                max_poll_interval=args.max_poll_interval,
                reconcile_delay=args.reconcile_delay,
                retry_unconfirmed=args.retry_unconfirmed,
            )
            display = open_display(args.progress, sys.stderr, interval=args.progress_interval)
            progress = _Progress(display, job, manifest.items)
            display.start(manifest.items, "submit")
            try:
                async with job:
                    await _consume(job, results, counts, progress)
            except StateInUseError as exc:  # raised on entry, before anything is sent
                raise CliError(str(exc)) from None
            finally:
                progress.update(force=True)
                display.stop(progress.snapshot() if not isinstance(display, PlainDisplay) else None)
            stats = job.stats
    finally:
        results.close()
    elapsed = time.monotonic() - started
    new = manifest.items - stats.earlier
    per_item = f" ({stats.requests / new:.2f} per new item)" if new > 0 else ""
    stderr_line(
        f"done: {plural(manifest.items, 'item')} in {elapsed:.1f}s: "
        f"{format_counts([(s, counts.get(s, 0)) for s in _order(counts)]) or 'nothing to do'}; "
        f"{plural(stats.requests, 'request')}{per_item}"
    )
    stderr_line(f"results: {results.path} ({plural(results.written, 'new line')}); state: {state}")
    if counts.get("unconfirmed"):
        stderr_line(
            "note: unconfirmed items may or may not have a task; see their error in the "
            "results, or rerun with --retry-unconfirmed"
        )
    return EXIT_OK if counts.get("ready", 0) == manifest.items else EXIT_NOT_READY


_ABSENT: Any = object()


async def _consume(
    job: BulkJob, results: ResultsFile, counts: Counter[str], progress: _Progress
) -> None:
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(progress.refresh)
        try:
            async for result in job:
                counts[result.status] += 1
                recorded = results.custom_ids.get(result.custom_id, _ABSENT)
                # One line per item: a line already there (an earlier run, or this item
                # handed over again after a crash) is not written twice, except for an
                # unconfirmed item that --retry-unconfirmed has now resolved.
                if recorded is _ABSENT or (
                    recorded == "unconfirmed" and result.status != "unconfirmed"
                ):
                    results.append(result_record(result))
                    results.custom_ids[result.custom_id] = result.status
        except Exception as error:  # raised as itself below, not inside an exception group
            failure = error
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``submit`` command's own options."""
    parser.add_argument("manifest", metavar="MANIFEST", help="JSON lines (or .csv) of items")
    parser.add_argument("--out", required=True, metavar="RESULTS", help="results file (JSONL)")
    parser.add_argument(
        "--state", metavar="FILE", help="SQLite state file (default RESULTS.state.sqlite)"
    )
    parser.add_argument(
        "--kind",
        type=kind_arg,
        metavar="KIND",
        help="kind of lines without one: embed_v2, embed_v1 or analyze",
    )
    parser.add_argument("--model", metavar="NAME", help="CSV manifests: the model_name")
    parser.add_argument("--prompt", metavar="TEXT", help="CSV manifests of analyze: the prompt")
    parser.add_argument(
        "--format",
        choices=("auto", "jsonl", "csv"),
        default="auto",
        help="manifest format (auto: csv for a .csv file, else JSON lines)",
    )
