"""Wire structs of analysis batches (``/analyze/batches``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final

from .analyze import AnalyzeTaskError, AnalyzeTaskResult
from .common import Wire as _Wire

__all__ = [
    "BATCH_FINAL_STATUSES",
    "AnalyzeBatch",
    "AnalyzeBatchCreated",
    "BatchItemRef",
    "BatchResultItem",
]

BATCH_FINAL_STATUSES: Final = frozenset({"completed", "canceled", "expired"})
"""A batch is final once ``completed`` (every item finished: read the counts), ``canceled`` or
``expired``. There is no ``failed`` batch."""


class BatchItemRef(_Wire):
    """One created item: its analysis task id and your ``custom_id`` (``None`` if unset)."""

    task_id: str
    custom_id: str | None = None


class AnalyzeBatchCreated(_Wire):
    """Answer of ``POST /analyze/batches``: one item per request, in request order."""

    batch_id: str
    status: str | None = None
    total_items: int | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    items: list[BatchItemRef] | None = None


class AnalyzeBatch(_Wire):
    """A batch (retrieve, list item and cancel answer): its status and item counts."""

    FINAL_STATUSES: ClassVar[frozenset[str]] = BATCH_FINAL_STATUSES

    batch_id: str
    status: str | None = None
    analysis_mode: str | None = None
    model_name: str | None = None
    total_items: int | None = None
    queued_items: int | None = None
    processing_items: int | None = None
    ready_items: int | None = None
    failed_items: int | None = None
    canceled_items: int | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    completed_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    webhooks: list[dict[str, Any]] | None = None

    @property
    def id(self) -> str:
        """The batch id (same as ``batch_id``), for code that handles every kind alike."""
        return self.batch_id

    @property
    def is_final(self) -> bool:
        """``True`` once ``completed``, ``canceled`` or ``expired``."""
        return self.status in BATCH_FINAL_STATUSES

    @property
    def error_message(self) -> str | None:
        """Batches carry no error of their own; read the per-item results."""
        return None


class BatchResultItem(_Wire):
    """One line of a batch's results: ``data`` when ``ready``, ``error`` when ``failed``."""

    task_id: str
    status: str
    custom_id: str | None = None
    data: AnalyzeTaskResult | None = None
    error: AnalyzeTaskError | None = None
