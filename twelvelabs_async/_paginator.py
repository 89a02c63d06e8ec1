"""``AsyncPaginator``: walk a list endpoint page by page, one page fetched ahead."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from ._exceptions import PaginationError
from .types.common import TaskPage

__all__ = ["AsyncPaginator"]

ItemT = TypeVar("ItemT")

DEFAULT_PAGE_LIMIT = 10
"""The API's page size when ``page_limit`` is not sent."""


class AsyncPaginator(Generic[ItemT]):
    """Items of a list endpoint across all pages.

    ``async for item in paginator`` yields every item; ``async for page in paginator.pages()``
    yields each :class:`~twelvelabs_async.types.TaskPage`. Iteration stops at
    ``page_info.total_page`` without an extra request, or, when the API does not say how many
    pages there are, at the first short or empty page. While you handle one page the next one is
    already being fetched, and no page after it: never more than one page ahead of the one you
    are on or waiting for. (Once ``total_page`` says a next page exists, its request goes out
    together with the one for the page you wait for, so that the server prepares it while this
    one is decoded.) Leaving the loop cancels that fetch. Nothing is requested until iteration
    starts, and each iteration starts from the first page again.

    A server that ignores the page asked for (it answers another ``page_info.page``, or, naming
    no page, the same items as the page before) would make the walk endless: it stops with
    :class:`~twelvelabs_async.PaginationError` instead.
    """

    def __init__(
        self,
        fetch_page: Callable[[int], Awaitable[TaskPage[ItemT]]],
        *,
        page: int = 1,
        page_limit: int | None = None,
        path: str = "",
    ) -> None:
        if page_limit is not None and not 1 <= page_limit <= 50:
            raise ValueError(f"page_limit must be between 1 and 50, got {page_limit}")
        if page < 1:
            raise ValueError(f"page must be 1 or more, got {page}")
        self._fetch_page = fetch_page
        self._first_page = page
        self._page_limit = page_limit
        self._path = path

    def __repr__(self) -> str:
        return f"<AsyncPaginator page={self._first_page} page_limit={self._page_limit}>"

    def _is_last(self, page: TaskPage[ItemT], number: int) -> bool:
        info = page.page_info
        if info is not None and info.total_page is not None:
            return number >= info.total_page
        limit = self._page_limit
        if limit is None:
            limit = info.limit_per_page if info and info.limit_per_page else DEFAULT_PAGE_LIMIT
        return len(page.items) < limit

    async def pages(self) -> AsyncGenerator[TaskPage[ItemT], None]:
        """Each page in order, the next one prefetched while the caller handles this one."""
        walk = _PageWalk(self)
        try:
            while (page := await walk.next_page()) is not None:
                yield page
        finally:
            await walk.aclose()

    async def __aiter__(self) -> AsyncIterator[ItemT]:
        # One generator layer per item, not two: items are the hot path of a listing.
        walk = _PageWalk(self)
        try:
            while (page := await walk.next_page()) is not None:
                for item in page.items:
                    yield item
        finally:
            await walk.aclose()

    async def to_list(self) -> list[ItemT]:
        """Every item, collected."""
        return [item async for item in self]


class _PageWalk(Generic[ItemT]):
    """One walk over the pages, keeping at most one page fetch running ahead."""

    __slots__ = (
        "_ahead",
        "_ahead_started",
        "_done",
        "_number",
        "_paginator",
        "_previous",
        "_total",
    )

    def __init__(self, paginator: AsyncPaginator[ItemT]) -> None:
        self._paginator = paginator
        self._number = paginator._first_page - 1
        self._ahead: asyncio.Task[TaskPage[ItemT]] | None = None
        self._ahead_started = False
        self._done = False
        self._total: int | None = None  # page_info.total_page, once a page said it
        self._previous: list[ItemT] | None = None  # the items of the page before

    async def _fetch_ahead(self, number: int) -> TaskPage[ItemT]:
        self._ahead_started = True
        return await self._paginator._fetch_page(number)

    def _start_ahead(self, number: int) -> None:
        # An owned task, cancelled and reaped in aclose(): an async generator cannot hold an
        # anyio task group open across `yield`.
        self._ahead_started = False
        self._ahead = asyncio.ensure_future(self._fetch_ahead(number))

    async def next_page(self) -> TaskPage[ItemT] | None:
        """The next page (``None`` at the end), with the fetch of the one after it under way."""
        if self._done:
            return None
        paginator = self._paginator
        current, self._ahead = self._ahead, None
        self._number += 1
        number = self._number
        if current is not None and not self._ahead_started:
            # The caller never yielded to the event loop since this fetch was set up, so it
            # has not begun: fetch right here instead, without a detour through another task.
            current.cancel()
            current = None
        if self._total is not None and number < self._total:
            # The API said the next page exists: request it now, while this one is on its way,
            # so that the server prepares it while this one is decoded and handed out.
            self._start_ahead(number + 1)
        page = await (current if current is not None else paginator._fetch_page(number))
        self._check_moved_on(page, number)
        info = page.page_info
        if info is not None and info.total_page is not None:
            self._total = info.total_page
        if number > paginator._first_page and not page.items:
            self._done = True
            return None
        if paginator._is_last(page, number):
            self._done = True
        elif self._ahead is None:
            self._start_ahead(number + 1)
        return page

    def _check_moved_on(self, page: TaskPage[ItemT], number: int) -> None:
        """Stop a server that ignores ``page``: it would be asked for pages forever."""
        info = page.page_info
        answered = info.page if info is not None else None
        items = page.items
        if answered is not None and answered != number:
            problem = f"page {answered} was answered"
        elif answered is None and items and items == self._previous:
            # (Only when the page is not named: a server that says it answered the page
            # asked for is taken at its word, even if two pages hold equal items.)
            problem = "the same items as the page before were answered"
        else:
            self._previous = items
            return
        self._done = True
        raise PaginationError(
            f"The list endpoint does not paginate: page {number} was asked for and {problem}; "
            "stopping instead of fetching forever",
            page=number,
            path=self._paginator._path,
        )

    async def aclose(self) -> None:
        """Cancel and reap a fetch still running ahead."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        if not ahead.done():
            ahead.cancel()
            # wait() neither raises the child's CancelledError nor swallows ours.
            await asyncio.wait([ahead])
        elif not ahead.cancelled():
            with contextlib.suppress(Exception):
                ahead.exception()  # retrieved: an unused page's error is not an error
