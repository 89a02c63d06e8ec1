"""The shape every task resource shares: list, retrieve, wait, and what the poller needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import anyio

from .._config import Timeout
from .._decode import decode
from .._engine import Action, CheckAt, Deliver, StopAll, TaskEngine
from .._exceptions import TaskFailedError, TaskTimeoutError
from .._paginator import AsyncPaginator
from .._polling import (
    DEFAULT_TASK_TIMEOUT,
    PollerOptions,
    note_unknown_status,
    options_from,
)
from .._transport import RequestOptions, Transport, encode_path_segment
from .._types import WatchKind
from ..types.common import TaskPage

__all__ = ["DEFAULT_TASK_TIMEOUT", "ListItem", "PolledTask", "TaskResource", "build_options"]


class PolledTask(Protocol):
    """What the polling code reads from any task model."""

    @property
    def status(self) -> str | None: ...

    @property
    def is_final(self) -> bool: ...

    @property
    def error_message(self) -> str | None: ...


class ListItem(Protocol):
    """What a sweep reads from a list item."""

    @property
    def id(self) -> str | None: ...

    @property
    def status(self) -> str | None: ...

    @property
    def created_at(self) -> datetime | None: ...


TaskT = TypeVar("TaskT")
ItemT = TypeVar("ItemT", bound=ListItem)
CheckT = TypeVar("CheckT", bound=PolledTask)


REQUEST_OPTION_KEYS = frozenset(
    {
        "timeout_in_seconds",
        "max_retries",
        "additional_headers",
        "additional_query_parameters",
        "additional_body_parameters",
        "chunk_size",
    }
)
"""The keys of the official SDK's ``request_options``; ``chunk_size`` (for streamed downloads,
which these endpoints do not have) is accepted and has no effect."""


def build_options(
    timeout: Timeout | float | None,
    max_retries: int | None,
    request_options: Mapping[str, Any] | None = None,
) -> RequestOptions | None:
    """Per-call options from our keywords or the official SDK's ``request_options`` dict.

    Every key of the official SDK is honoured (``additional_headers`` may not set the key or
    the body framing); any other key raises ``ValueError`` rather than being ignored.
    """
    extra: dict[str, Any] = {}
    if request_options:
        unknown = set(request_options) - REQUEST_OPTION_KEYS
        if unknown:
            raise ValueError(
                f"unknown request_options key(s) {sorted(unknown)}; "
                f"accepted: {sorted(REQUEST_OPTION_KEYS)}"
            )
        if timeout is None and request_options.get("timeout_in_seconds") is not None:
            timeout = float(request_options["timeout_in_seconds"])
        if max_retries is None and request_options.get("max_retries") is not None:
            max_retries = int(request_options["max_retries"])
        for ours, theirs in (
            ("extra_headers", "additional_headers"),
            ("extra_query", "additional_query_parameters"),
            ("extra_body", "additional_body_parameters"),
        ):
            if request_options.get(theirs):
                extra[ours] = request_options[theirs]
    if timeout is None and max_retries is None and not extra:
        return None
    return RequestOptions(
        timeout=None if timeout is None else Timeout.coerce(timeout),
        max_retries=max_retries,
        **extra,
    )


def format_time(value: datetime | str | None) -> str | None:
    """An RFC 3339 string for a list filter (naive datetimes are taken as UTC)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class TaskResource(Generic[TaskT, ItemT, CheckT]):
    """Base of the three task resources.

    ``TaskT`` is what ``retrieve`` returns, ``ItemT`` a list item and ``CheckT`` what one
    status check returns (the same as ``TaskT`` except for Embed v1, whose light status
    endpoint is polled and whose full record is fetched once, at the end).
    """

    kind: ClassVar[WatchKind]
    collection: ClassVar[str]
    final_statuses: ClassVar[frozenset[str]]
    known_statuses: ClassVar[frozenset[str]]
    sweep_statuses: ClassVar[tuple[str, ...]]
    """Non-final statuses a sweep lists to learn, many tasks per request, which changed."""
    sweep_time_window: ClassVar[bool]
    """Whether the list endpoint filters by creation time (``started_at``/``ended_at``)."""
    success_status: ClassVar[str] = "ready"
    """The final status that means success (``raise_on_failure`` raises for the others)."""
    task_type: type[TaskT]
    item_type: type[ItemT]

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.collection}>"

    def _task_path(self, task_id: str, suffix: str = "") -> str:
        return f"{self.collection}/{encode_path_segment(task_id)}{suffix}"

    # --- listing --------------------------------------------------------------------------

    def _paginate(
        self,
        filters: Mapping[str, str | Sequence[str] | None],
        page: int | None,
        page_limit: int | None,
        options: RequestOptions | None,
    ) -> AsyncPaginator[ItemT]:
        # Array filters repeat their key once per value (``status=a&status=b``).
        params: list[tuple[str, str]] = []
        for key, value in filters.items():
            if isinstance(value, str):
                params.append((key, value))
            elif value is not None:
                params.extend((key, str(one)) for one in value)
        if page_limit is not None:
            params.append(("page_limit", str(page_limit)))

        async def fetch(number: int) -> TaskPage[ItemT]:
            return await self.list_page([*params, ("page", str(number))], options)

        return AsyncPaginator(
            fetch, page=1 if page is None else page, page_limit=page_limit, path=self.collection
        )

    async def list_page(
        self,
        params: Mapping[str, str] | Sequence[tuple[str, str]],
        options: RequestOptions | None = None,
    ) -> TaskPage[ItemT]:
        """One raw page of the list endpoint (``params`` already in wire form)."""
        response = await self._transport.request(
            "GET", self.collection, params=params, options=options
        )
        return decode(TaskPage[self.item_type], response)  # type: ignore[name-defined]

    # --- one task -------------------------------------------------------------------------

    async def _get(
        self, tp: type[Any], path: str, options: RequestOptions | None, **kw: Any
    ) -> Any:
        response = await self._transport.request("GET", path, options=options, **kw)
        return decode(tp, response)

    async def retrieve(
        self,
        task_id: str,
        *,
        timeout: Timeout | float | None = None,
        max_retries: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> TaskT:
        """The task's current state (and its results once ready).

        Raises:
            NotFoundError: no such task (never created, deleted, or past retention).
            ResponseDecodeError: the body does not fit the model.
        """
        opts = build_options(timeout, max_retries, request_options)
        # The transport directly, not through _get(): this is the hottest call there is.
        response = await self._transport.request("GET", self._task_path(task_id), options=opts)
        return decode(self.task_type, response)

    async def check(self, task_id: str, options: RequestOptions | None = None) -> CheckT:
        """One status check, as cheap as the API allows (used by ``wait`` and the poller)."""
        response = await self._transport.request("GET", self._task_path(task_id), options=options)
        checked: CheckT = decode(self.task_type, response)  # type: ignore[assignment]
        return checked

    async def complete(
        self, checked: CheckT, task_id: str, options: RequestOptions | None
    ) -> TaskT:
        """The full final record of a task whose check said it is final."""
        return checked  # type: ignore[return-value]

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        raise_on_failure: bool = False,
        max_retries: int | None = None,
        options: PollerOptions | None = None,
    ) -> TaskT:
        """Poll one task until it is final and return it.

        Args:
            timeout: the task's deadline in seconds (``None``: no deadline). The last check
                is made at the deadline, so a task final before it is never reported late.
            poll_interval: first delay between two checks; it grows with jitter...
            max_poll_interval: ...up to this cap.
            raise_on_failure: raise :class:`TaskFailedError` for a ``failed`` or ``canceled``
                task instead of returning it.
            max_retries: retries of each status check's transient errors.
            options: a :class:`PollerOptions` (its ``timeout`` applies only if ``timeout`` is
                left at its default; the keywords above win when given).

        Raises:
            TaskTimeoutError: a check made at (or in flight across) the deadline still said
                "not final" (``last_error`` says what, if anything, kept failing).
            NotFoundError: the task answered 404 twice in a row.
            AuthenticationError, PermissionDeniedError: the key was refused.
            TaskFailedError: with ``raise_on_failure=True`` only.
        """
        if options is not None and timeout == DEFAULT_TASK_TIMEOUT:
            timeout = options.timeout
        opts = options_from(
            options,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            max_retries=max_retries,
        )
        request_options = build_options(None, opts.max_retries)
        start = anyio.current_time()
        engine = TaskEngine(
            opts.schedule(), None if opts.timeout is None else start + opts.timeout, opts.grace()
        )
        last: CheckT | None = None
        action: Action = engine.start(start)
        while isinstance(action, CheckAt):
            await anyio.sleep_until(action.when)
            result: TaskT | None = None
            error: Exception | None = None
            with anyio.CancelScope(deadline=engine.cutoff()) as scope:
                try:
                    checked = await self.check(task_id, request_options)
                    last = checked
                    if checked.is_final:
                        result = await self.complete(checked, task_id, request_options)
                except Exception as exc:
                    error = exc
            now = anyio.current_time()
            if scope.cancelled_caught:
                action = engine.on_cutoff(now)
            elif error is not None:
                action = engine.on_error(now, error)
            else:
                assert last is not None
                if result is None:
                    note_unknown_status(self.kind, last.status, self.known_statuses)
                action = engine.on_result(now, last.status, result is not None)
            if isinstance(action, Deliver) and result is not None:
                if raise_on_failure:
                    raise_if_failed(self.kind, task_id, result, self.success_status)
                return result
        if isinstance(action, StopAll):
            raise action.error
        assert isinstance(action, Deliver)
        if action.raise_error and action.error is not None:
            raise action.error
        raise TaskTimeoutError(
            f"{self.kind} task {task_id!r} was not final after {opts.timeout}s "
            f"(last status: {getattr(last, 'status', None)!r})",
            task_id=task_id,
            kind=self.kind,
            task=last,
            last_error=action.error,
        )


def raise_if_failed(kind: WatchKind, task_id: str, task: Any, success: str = "ready") -> None:
    """Raise :class:`TaskFailedError` unless ``task`` ended ``success``."""
    status = getattr(task, "status", None)
    if status == success:
        return
    message = getattr(task, "error_message", None)
    raise TaskFailedError(
        f"{kind} task {task_id!r} ended {status!r}" + (f": {message}" if message else ""),
        task_id=task_id,
        kind=kind,
        task=task,
        status=str(status),
        error_message=message,
    )
