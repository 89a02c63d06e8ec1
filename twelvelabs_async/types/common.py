"""Wire structs shared by every list endpoint."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

__all__ = ["PageInfo", "TaskPage", "Wire"]

ItemT = TypeVar("ItemT")


class Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every wire struct: keyword-only, unknown fields ignored."""


class PageInfo(Wire):
    """Pagination facts of one list page. Any field may be missing (the analysis list sends
    only ``page``)."""

    limit_per_page: int | None = None
    page: int | None = None
    total_page: int | None = None
    total_results: int | None = None


class TaskPage(Wire, Generic[ItemT]):
    """One page of a list endpoint: ``data`` and ``page_info``."""

    data: list[ItemT] | None = None
    page_info: PageInfo | None = None

    @property
    def items(self) -> list[ItemT]:
        """The page's items (an empty list when ``data`` is missing or null)."""
        return self.data or []
