"""Small shared vocabulary: task kinds and status names."""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ANALYZE_FINAL_STATUSES",
    "EMBED_FINAL_STATUSES",
    "TaskKind",
    "TaskStatus",
    "WatchKind",
]

TaskKind = Literal["embed_v2", "embed_v1", "analyze"]
"""Which family a task belongs to; also the keyword names of ``wait_all``."""

WatchKind = Literal["embed_v2", "embed_v1", "analyze", "asset", "analyze_batch"]
"""Everything ``wait()`` and the poller watch: the task kinds, assets and analysis batches."""


class TaskStatus:
    """Status strings used by the API, plus the poller's own two verdicts.

    The API may add statuses at any time; an unknown string is kept as is and treated as
    not final.
    """

    QUEUED: Final = "queued"
    PENDING: Final = "pending"
    PROCESSING: Final = "processing"
    READY: Final = "ready"
    FAILED: Final = "failed"
    CANCELED: Final = "canceled"
    TIMED_OUT: Final = "timed_out"
    """The poller's verdict: the task's deadline passed before it was final."""
    NOT_FOUND: Final = "not_found"
    """The poller's verdict: the task answered 404 (deleted or past retention)."""


EMBED_FINAL_STATUSES: Final = frozenset({TaskStatus.READY, TaskStatus.FAILED})
"""Final statuses of embedding tasks (Embed v2 and v1)."""

ANALYZE_FINAL_STATUSES: Final = frozenset(
    {TaskStatus.READY, TaskStatus.FAILED, TaskStatus.CANCELED}
)
"""Final statuses of analysis tasks."""
