"""What every command shares: exit codes, kind names, the client, JSON output, errors."""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any, Final, NoReturn

import msgspec

from .._argtypes import KIND_NAMES, kind_arg
from .._client import AsyncTwelveLabs
from .._exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    InvalidFileError,
    NotFoundError,
    PermissionDeniedError,
    TwelveLabsError,
)
from .._poller import Outcome
from .._types import TaskKind
from ..resources import AnalyzeTasks, EmbedV1Tasks, EmbedV2Tasks

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_AUTH",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_READY",
    "EXIT_OK",
    "EXIT_USAGE",
    "KIND_NAMES",
    "CliError",
    "error_exit_code",
    "kind_arg",
    "make_client",
    "outcome_record",
    "printable",
    "resource_for",
]

EXIT_OK: Final = 0
"""Success; for ``watch``/``demo``: every task ended ``ready``."""
EXIT_NOT_READY: Final = 1
"""A task failed, was canceled, timed out or was not found (``tasks get``: no such task)."""
EXIT_USAGE: Final = 2
"""Bad arguments or configuration: no API key, a bad base URL, no ids, an unreadable file."""
EXIT_AUTH: Final = 3
"""The API refused the key (401/403)."""
EXIT_API_ERROR: Final = 4
"""Any other API error, or the API could not be reached."""
EXIT_INTERRUPTED: Final = 130
"""Interrupted (Ctrl-C); ``watch --out`` can be rerun to resume."""
EXIT_BROKEN_PIPE: Final = 141
"""Standard output was closed by its reader (``| head``), as for a tool killed by SIGPIPE."""

CLI_NAMES: Final[dict[TaskKind, str]] = {kind: name for name, kind in KIND_NAMES.items()}

_encoder = msgspec.json.Encoder()
logger = logging.getLogger("twelvelabs_async")

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls, DEL, line/paragraph separators and bidirectional overrides: bytes a
server-controlled string could use to move the cursor, rewrite the screen or reorder text."""


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: every control character becomes a ``\\uXXXX``
    escape (the JSON spelling, so a JSON line stays valid JSON with the same meaning)."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class CliError(Exception):
    """An error to report on stderr as ``error: <message>`` with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def positive_float(value: str) -> float:
    """argparse ``type=``: a number of seconds (or a rate) above zero."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not (number > 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0: {value!r}")
    return number


def request_budget(value: str) -> float:
    """argparse ``type=``: requests per task, above 1 (one retrieve plus list requests)."""
    number = positive_float(value)
    if not number > 1:
        raise argparse.ArgumentTypeError(f"must be above 1: {value!r}")
    return number


def make_client(args: argparse.Namespace, **kwargs: Any) -> AsyncTwelveLabs:
    """The client, configured like the library does (``--api-key``/``--base-url`` first, then
    ``TWELVELABS_API_KEY``/``TWELVE_LABS_API_KEY`` and ``TWELVELABS_BASE_URL``)."""
    try:
        return AsyncTwelveLabs(
            api_key=getattr(args, "api_key", None),
            base_url=getattr(args, "base_url", None),
            **kwargs,
        )
    except ValueError as exc:  # no key (MissingAPIKeyError), or a bad base URL
        raise CliError(str(exc), EXIT_USAGE) from None


AnyTaskResource = EmbedV2Tasks | EmbedV1Tasks | AnalyzeTasks
"""One of the three task resources."""


def resource_for(client: AsyncTwelveLabs, kind: TaskKind) -> AnyTaskResource:
    """``client.embed.v2.tasks`` / ``client.embed.v1.tasks`` / ``client.analyze.tasks``."""
    if kind == "embed_v2":
        return client.embed.v2.tasks
    if kind == "embed_v1":
        return client.embed.v1.tasks
    return client.analyze.tasks


def error_exit_code(error: BaseException) -> int:
    """The exit code for an error that ended a command."""
    if isinstance(error, CliError):
        return error.exit_code
    if isinstance(error, InvalidFileError):
        return EXIT_USAGE
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return EXIT_AUTH
    if isinstance(error, NotFoundError):
        return EXIT_NOT_READY
    if isinstance(error, BadRequestError) and error.code == "parameter_invalid":
        return EXIT_NOT_READY  # what the v1 endpoints answer for an unknown id
    return EXIT_API_ERROR


def describe_error(error: BaseException) -> str:
    """One line for stderr (never holds the API key: errors describe requests by path; the
    server's own message is escaped, see :func:`printable`)."""
    if isinstance(error, APIConnectionError):
        return printable(f"cannot reach the API: {error}")
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return printable(f"the API refused the key: {error}")
    if isinstance(error, CliError):  # our own message: its line breaks are meant
        return "\n".join(printable(line) for line in str(error).split("\n"))
    if isinstance(error, (APIError, TwelveLabsError)):
        return printable(str(error))
    return printable(f"{type(error).__name__}: {error}")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Raise a :class:`CliError`."""
    raise CliError(message, code)


def encode(value: Any) -> bytes:
    """Compact JSON of a model, a dict of models, or plain data."""
    return _encoder.encode(value)


def outcome_error(outcome: Outcome) -> str | None:
    """The outcome's error, else a failed/canceled task's own error message."""
    if outcome.error is not None:
        return str(outcome.error)
    if outcome.status != "ready" and outcome.task is not None:
        message = getattr(outcome.task, "error_message", None)
        if isinstance(message, str) and message:
            return message
    return None


def outcome_record(outcome: Outcome) -> bytes:
    """One results line (with its newline): ``task_id``, ``kind``, ``status``, ``error`` when
    there is one, and the last task retrieved as ``task``."""
    record: dict[str, Any] = {
        "task_id": outcome.task_id,
        "kind": outcome.kind,
        "status": outcome.status,
    }
    error = outcome_error(outcome)
    if error is not None:
        record["error"] = error
    record["task"] = outcome.task
    return _encoder.encode(record) + b"\n"


def write_line(stream: IO[str], text: str) -> None:
    """Write one line and flush."""
    stream.write(text + "\n")
    stream.flush()


def plural(count: int, word: str) -> str:
    """``"1 task"``, ``"3,000 tasks"``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def unique(ids: Iterable[str]) -> list[str]:
    """The ids in first-seen order, each once."""
    return list(dict.fromkeys(ids))


def stderr_line(text: str) -> None:
    """A message on stderr."""
    write_line(sys.stderr, text)


def format_counts(counts: Sequence[tuple[str, int]]) -> str:
    """``"ready 12 · failed 1"`` (zero counts left out; a status is the server's string, so
    it is escaped)."""
    return " · ".join(f"{printable(name)} {count:,}" for name, count in counts if count)
