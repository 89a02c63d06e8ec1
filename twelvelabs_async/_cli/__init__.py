"""The ``twelvelabs-async`` command line (also ``python -m twelvelabs_async``).

Never imported by the library itself: ``import twelvelabs_async`` loads neither this package
nor argparse nor rich.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .._argtypes import KIND_NAMES, kind_arg, positive_int
from .._fake_args import add_fake_server_arguments
from .._version import __version__
from ._common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    describe_error,
    error_exit_code,
    positive_float,
    request_budget,
    stderr_line,
)

__all__ = ["build_parser", "main"]

KINDS_METAVAR = "{" + ",".join(KIND_NAMES) + "}"

DESCRIPTION = """\
Work with TwelveLabs long-running tasks (Embed v2, Embed v1 and analysis) from a terminal.

The API key comes from --api-key, else TWELVELABS_API_KEY (or TWELVE_LABS_API_KEY); the
base URL from --base-url, else TWELVELABS_BASE_URL, else https://api.twelvelabs.io/v1.3.
Start with `twelvelabs-async demo`: no key, no network."""

EXIT_CODES = """\
exit codes:
  0    success (watch, demo: every task ended ready / final; submit: every item ready)
  1    a task failed, was canceled, timed out or was not found (submit: an item
       settled otherwise); tasks get: the task does not exist
  2    usage error: bad arguments, no API key, no task ids, unusable file,
       a bad manifest (submit: nothing was created)
  3    the API refused the key (401/403)
  4    another API error, or the API could not be reached
  130  interrupted (Ctrl-C); rerun watch or submit with the same --out to resume
  141  the reader of stdout went away (e.g. `| head`)"""

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _paragraphs(*paragraphs: str) -> str:
    return "\n\n".join(textwrap.fill(text, 88) for text in paragraphs)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top parser and again on every command (SUPPRESS: a command-level option only
    # overrides when given), so `--api-key K` works before or after the command name.
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--api-key",
        default=default,
        metavar="KEY",
        help="API key (prefer TWELVELABS_API_KEY: options show up in `ps`)",
    )
    group.add_argument(
        "--base-url", default=default, metavar="URL", help="API root (TWELVELABS_BASE_URL)"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="log retries (-v) and every request (-vv) to stderr",
    )


def _progress_options(parser: argparse.ArgumentParser, default_interval: float) -> None:
    parser.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "none"),
        default="auto",
        help="live bar on a terminal (auto: rich if installed), plain lines elsewhere",
    )
    parser.add_argument(
        "--progress-interval",
        type=positive_float,
        default=default_interval,
        metavar="SECONDS",
        help=f"seconds between plain progress lines (default {default_interval:g})",
    )


def _command(parser: argparse.ArgumentParser, target: str) -> None:
    # "module:function", imported only when that command runs (the fake server and the
    # demo cost every other command nothing).
    parser.set_defaults(target=target)


def _load(target: str) -> Command:
    module_name, _, function = target.partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    command: Command = getattr(module, function)
    return command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="twelvelabs-async",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _connection_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # --- tasks ---------------------------------------------------------------------------
    tasks = commands.add_parser(
        "tasks", help="list or retrieve tasks", description="List or retrieve tasks."
    )
    actions = tasks.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="list tasks, newest first",
        description="List tasks newest first: a table, or JSON lines with --json.",
        epilog="example: twelvelabs-async tasks list embed-v2 --status processing --limit 20",
        formatter_class=_Formatter,
    )
    listing.add_argument("kind", type=kind_arg, metavar=KINDS_METAVAR, help="task kind")
    listing.add_argument("--status", help="only tasks with this status (e.g. processing)")
    listing.add_argument(
        "--started-at", metavar="TIME", help="embed: created at or after (RFC 3339)"
    )
    listing.add_argument("--ended-at", metavar="TIME", help="embed: created at or before")
    listing.add_argument("--video-url", metavar="URL", help="analyze: only this video URL")
    listing.add_argument("--asset-id", metavar="ID", help="analyze: only this asset")
    listing.add_argument(
        "--analysis-mode", metavar="MODE", help="analyze: general or time_based_metadata"
    )
    listing.add_argument(
        "--page-limit",
        type=int,
        choices=range(1, 51),
        default=50,
        metavar="N",
        help="tasks per request, 1-50 (default 50)",
    )
    listing.add_argument("--limit", type=positive_int, metavar="N", help="stop after N tasks")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    _connection_options(listing, top=False)
    _command(listing, "_tasks:tasks_list")

    getting = actions.add_parser(
        "get",
        help="retrieve one task (JSON)",
        description="Print one task as JSON. A task that does not exist exits with code 1.",
        epilog="example: twelvelabs-async tasks get analyze 64f8d2c7e4a1b37f8a9c5d12",
        formatter_class=_Formatter,
    )
    getting.add_argument("kind", type=kind_arg, metavar=KINDS_METAVAR, help="task kind")
    getting.add_argument("task_id", metavar="ID", help="the task id")
    _connection_options(getting, top=False)
    _command(getting, "_tasks:tasks_get")

    # --- assets --------------------------------------------------------------------------
    assets = commands.add_parser(
        "assets", help="upload local files as assets", description="Upload assets."
    )
    asset_actions = assets.add_subparsers(dest="action", metavar="ACTION", required=True)
    uploading = asset_actions.add_parser(
        "upload",
        help="upload a local file, with a progress bar, and wait until the asset is ready",
        description=_paragraphs(
            "Upload PATH as an asset: directly up to 200 MB, in parts (multipart) above that "
            "or with --multipart. Progress goes to stderr (the upload id first, to --resume "
            "an interrupted upload without sending its finished parts again); the final "
            "asset is printed as JSON. Exit 1 if the asset failed processing."
        ),
        epilog="example: twelvelabs-async assets upload movie.mp4 --concurrency 8",
        formatter_class=_Formatter,
    )
    uploading.add_argument("path", metavar="PATH", help="the local file")
    uploading.add_argument(
        "--type", default="video", choices=("video", "audio", "image"), help="media type"
    )
    uploading.add_argument("--multipart", action="store_true", help="upload in parts")
    uploading.add_argument("--resume", metavar="UPLOAD_ID", help="resume this upload")
    uploading.add_argument(
        "--concurrency", type=positive_int, default=5, metavar="N", help="parts in flight"
    )
    uploading.add_argument("--no-wait", action="store_true", help="do not wait for ready")
    uploading.add_argument(
        "--timeout",
        type=positive_float,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="how long to wait for the asset to be ready",
    )
    uploading.add_argument(
        "--progress-interval",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal",
    )
    _connection_options(uploading, top=False)
    _command(uploading, "_assets:assets_upload")

    # --- watch ---------------------------------------------------------------------------
    watching = commands.add_parser(
        "watch",
        help="wait for tasks, with progress and a resumable results file",
        description=_paragraphs(
            "Poll tasks of one kind until each is final. Each final task is written as one "
            "JSON line (task_id, kind, status, error, task) to --out the moment it is known, "
            "or to stdout without --out; rerun with the same --out to resume. Progress goes "
            "to stderr.",
            "Task ids come from the arguments, --ids-file (one per line, or JSON lines such "
            "as `tasks list --json` output; - for stdin), stdin when it is not a terminal, "
            "and/or --status (every task listed with that status).",
        ),
        epilog=(
            "examples:\n"
            "  twelvelabs-async watch embed-v2 --ids-file ids.txt --out results.jsonl\n"
            "  twelvelabs-async watch analyze --status unfinished --timeout 3600\n"
            "  twelvelabs-async tasks list embed-v1 --status processing --json "
            "| twelvelabs-async watch embed-v1\n\n" + EXIT_CODES
        ),
        formatter_class=_Formatter,
    )
    watching.add_argument("kind", type=kind_arg, metavar=KINDS_METAVAR, help="task kind")
    watching.add_argument("ids", nargs="*", metavar="ID", help="task ids (- reads stdin)")
    watching.add_argument("--ids-file", metavar="FILE", help="task ids, one per line (- = stdin)")
    watching.add_argument(
        "--status",
        metavar="STATUS",
        help="also watch every task listed with this status (comma-separated; "
        "'unfinished' = every non-final status of the kind)",
    )
    watching.add_argument(
        "--out", metavar="FILE", help="append results here (resumable); default stdout"
    )
    watching.add_argument(
        "--timeout",
        type=positive_float,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="each task's deadline (default 21600 = 6 h)",
    )
    watching.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=16,
        metavar="N",
        help="requests in flight at once (default 16)",
    )
    watching.add_argument(
        "--requests-per-minute",
        type=positive_float,
        metavar="N",
        help="hard cap on the request rate (default none; 429s are obeyed anyway)",
    )
    watching.add_argument(
        "--poll-interval",
        type=positive_float,
        metavar="SECONDS",
        help="first delay between two checks of a task (default 2)",
    )
    watching.add_argument(
        "--max-poll-interval",
        type=positive_float,
        metavar="SECONDS",
        help="the cap the delay grows to (default 30)",
    )
    watching.add_argument(
        "--target-delay",
        type=positive_float,
        metavar="SECONDS",
        help="for 3+ tasks: the median delay wanted between a task finishing and its line "
        "(default 10)",
    )
    watching.add_argument(
        "--requests-per-task",
        type=request_budget,
        metavar="N",
        help="for 3+ tasks: the request budget per task, above 1 (default 1.25)",
    )
    _progress_options(watching, 5.0)
    _connection_options(watching, top=False)
    _command(watching, "_watch:watch")

    # --- submit --------------------------------------------------------------------------
    from ._submit import add_arguments as submit_arguments

    submitting = commands.add_parser(
        "submit",
        help="create a task per manifest item, watch them all, store the results (resumable)",
        description=_paragraphs(
            "Create one task per item of MANIFEST (JSON lines: custom_id, kind, params; or a "
            "CSV of custom_id,url with --kind and --model), watch them all, and append one "
            "JSON line per item (custom_id, kind, task_id, status, error, task) to RESULTS "
            "once it is settled. The whole manifest is checked before anything is created.",
            "Progress goes to stderr. The state lives in an SQLite file: rerun the same "
            "command to resume after a crash or Ctrl-C; no item is ever created twice. A "
            "create that may have reached the API unanswered and matches no task settles as "
            "'unconfirmed'.",
        ),
        epilog=(
            "examples:\n"
            "  twelvelabs-async submit videos.jsonl --out results.jsonl\n"
            "  twelvelabs-async submit videos.csv --kind embed-v2 --model marengo3.0 "
            "--out results.jsonl --requests-per-minute 600\n"
            "  twelvelabs-async export results.jsonl --out vectors\n\n" + EXIT_CODES
        ),
        formatter_class=_Formatter,
    )
    submit_arguments(submitting)
    submitting.add_argument(
        "--concurrency",
        type=positive_int,
        default=64,
        metavar="N",
        help="items in progress at once: created, not yet settled (default 64)",
    )
    submitting.add_argument(
        "--requests-per-minute",
        type=positive_float,
        metavar="R",
        help="one cap on every request: creates, polls, lists, retries (default none)",
    )
    submitting.add_argument(
        "--timeout",
        type=positive_float,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="each task's deadline from when it is watched (default 21600 = 6 h)",
    )
    submitting.add_argument(
        "--poll-interval",
        type=positive_float,
        metavar="SECONDS",
        help="first delay between two checks of a task (default 2)",
    )
    submitting.add_argument(
        "--max-poll-interval",
        type=positive_float,
        metavar="SECONDS",
        help="the cap the delay grows to (default 30)",
    )
    submitting.add_argument(
        "--reconcile-delay",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="wait this long after an unanswered create before a task list may prove it "
        "never reached the API (default 30)",
    )
    submitting.add_argument(
        "--retry-unconfirmed",
        action="store_true",
        help="reconcile unconfirmed items again; create those proven absent",
    )
    _progress_options(submitting, 5.0)
    _connection_options(submitting, top=False)
    _command(submitting, "_submit:submit")

    # --- export --------------------------------------------------------------------------
    exporting = commands.add_parser(
        "export",
        help="write a results file's embeddings for a vector store (Parquet, or .npy)",
        description=_paragraphs(
            "One row per embedding segment of every ready embed task in RESULTS: "
            "custom_id, task_id, segment, option, scope, start, end, vector. Written to "
            "PREFIX.parquet when pyarrow is installed, else PREFIX.npy (float32 matrix) and "
            "PREFIX.jsonl (the other columns; line i describes row i)."
        ),
        formatter_class=_Formatter,
    )
    exporting.add_argument("results", metavar="RESULTS", help="a results file (submit, watch)")
    exporting.add_argument("--out", required=True, metavar="PREFIX", help="output path prefix")
    exporting.add_argument(
        "--format",
        choices=("auto", "parquet", "npy"),
        default="auto",
        help="auto: parquet if pyarrow is installed, else npy",
    )
    _command(exporting, "_export:export")

    # --- fake-server ---------------------------------------------------------------------
    faking = commands.add_parser(
        "fake-server",
        help="run the built-in fake TwelveLabs API",
        description=_paragraphs(
            "Serve the fake TwelveLabs API on 127.0.0.1 and print its base URL on stdout "
            "(one line). Ctrl-C stops it."
        ),
        epilog="example: twelvelabs-async fake-server --port 8080 --seed-tasks 100 "
        "--ids-out ids.txt",
        formatter_class=_Formatter,
    )
    add_fake_server_arguments(faking)  # shared with `python -m twelvelabs_async.testing`
    _command(faking, "_fake:fake_server")

    # --- demo ----------------------------------------------------------------------------
    demoing = commands.add_parser(
        "demo",
        help="the main job against an in-process fake API (no key, no network)",
        description=_paragraphs(
            "Start the fake API in this process, create a few thousand mixed tasks, list and "
            "retrieve tasks of every kind, watch them all with a progress display, write the "
            "results file and print a summary. No API key, no network."
        ),
        formatter_class=_Formatter,
    )
    demoing.add_argument(
        "--tasks", type=positive_int, default=3000, metavar="N", help="tasks (default 3000)"
    )
    demoing.add_argument(
        "--out",
        default="demo-results.jsonl",
        type=os.path.abspath,
        metavar="FILE",
        help="results file, rewritten (default demo-results.jsonl)",
    )
    demoing.add_argument(
        "--duration",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="tasks finish 1 to SECONDS after creation (default 10)",
    )
    demoing.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="each task's deadline (default 120)",
    )
    demoing.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _progress_options(demoing, 2.0)
    _command(demoing, "_demo:demo")
    return parser


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (a live display may have wrapped it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logger = logging.getLogger("twelvelabs_async")
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see ``twelvelabs-async --help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(getattr(args, "verbose", 0) or 0)
    run = _load(args.target)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        stderr_line("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `... | head`: the reader left. Point stdout at /dev/null so that the flush at exit
        # does not fail again, and exit like a tool killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except Exception as error:
        stderr_line(f"error: {describe_error(error)}")
        return error_exit_code(error)
