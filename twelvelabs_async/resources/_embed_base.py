"""What both embedding task resources share: final statuses, sweeps and the list filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from .._config import Timeout
from .._paginator import AsyncPaginator
from .._types import EMBED_FINAL_STATUSES
from ..types.embed_v2 import MediaEmbeddingTask
from ._base import PolledTask, TaskResource, build_options, format_time

__all__ = ["EmbedTaskResource"]

TaskT = TypeVar("TaskT")
CheckT = TypeVar("CheckT", bound=PolledTask)


class EmbedTaskResource(TaskResource[TaskT, MediaEmbeddingTask, CheckT]):
    """Base of the Embed v2 and v1 task resources (final: ``ready``, ``failed``)."""

    final_statuses: ClassVar[frozenset[str]] = EMBED_FINAL_STATUSES
    known_statuses: ClassVar[frozenset[str]] = EMBED_FINAL_STATUSES | {"processing"}
    sweep_statuses: ClassVar[tuple[str, ...]] = ("processing",)
    sweep_time_window: ClassVar[bool] = True
    item_type = MediaEmbeddingTask

    def list(
        self,
        *,
        started_at: datetime | str | None = None,
        ended_at: datetime | str | None = None,
        status: str | None = None,
        page: int | None = None,
        page_limit: int | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> AsyncPaginator[MediaEmbeddingTask]:
        """Tasks newest first, optionally only those created in ``started_at``..``ended_at``
        (the last 7 days when neither is given) or with a given ``status``. ``page_limit`` is
        1-50 (the API's default is 10)."""
        filters = {
            "started_at": format_time(started_at),
            "ended_at": format_time(ended_at),
            "status": status,
        }
        options = build_options(timeout, max_retries, request_options)
        return self._paginate(filters, page, page_limit, options)
