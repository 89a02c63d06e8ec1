"""``AsyncTwelveLabs``: the client, its lifecycle, and the entry points to the poller."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._config import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Limits,
    RetryPolicy,
    Timeout,
    resolve_api_key,
    resolve_base_url,
)
from ._poller import Outcome, Poller, StatusChange
from ._polling import PollerOptions, options_from
from ._ratelimit import RequestGate
from ._transport import EventHooks, Transport
from ._types import WatchKind
from .resources import Analyze, Assets, Embed, MultipartUpload, TaskResource

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AsyncTwelveLabs"]

_DEFAULT: Any = object()
"""``timeout`` left out: the options' value (6 hours by default) applies."""


class AsyncTwelveLabs:
    """Asyncio client for TwelveLabs' long-running tasks.

    Use it as ``async with AsyncTwelveLabs() as client: ...`` (or call :meth:`aclose`). The
    aiohttp session is created on first use, inside the running event loop, and closed by
    :meth:`aclose`; a ``session`` you pass in is used as is and never closed by the client.

    Args:
        api_key: defaults to ``TWELVELABS_API_KEY``, then ``TWELVE_LABS_API_KEY``.
        base_url: defaults to ``TWELVELABS_BASE_URL``, then ``https://api.twelvelabs.io/v1.3``.
        timeout: per-attempt limits: a :class:`Timeout`, or seconds for read and total.
        max_retries: retries of each request's transient failures (per call overridable).
        limits: pool and response size limits (see :class:`Limits`).
        max_connections: shorthand for ``limits=Limits(max_connections=...)``.
        max_response_size: shorthand for ``limits=Limits(max_response_size=...)``.
        session: an ``aiohttp.ClientSession`` to use instead of our own (its own proxy and
            pool settings then apply).
        retry_policy: backoff timing (see :class:`RetryPolicy`).
        hooks: ``on_request`` / ``on_response`` callbacks for your metrics.
        allow_insecure_http: allow sending the key over ``http://`` to a non-loopback host.
        headers: extra headers sent with every request.
        trust_env: follow ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY``
            (read once, when the client is created; a loopback ``base_url`` is never
            proxied). ``False`` ignores them.
        proxy: a proxy URL to use whatever the environment says.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: Timeout | float | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        limits: Limits | None = None,
        max_connections: int | None = None,
        session: aiohttp.ClientSession | None = None,
        max_response_size: int | None = None,
        retry_policy: RetryPolicy | None = None,
        hooks: EventHooks | None = None,
        allow_insecure_http: bool = False,
        headers: Mapping[str, str] | None = None,
        trust_env: bool = True,
        proxy: str | None = None,
    ) -> None:
        limits = limits or DEFAULT_LIMITS
        if max_connections is not None:
            limits = dataclasses.replace(limits, max_connections=max_connections)
        if max_response_size is not None:
            limits = dataclasses.replace(limits, max_response_size=max_response_size)
        self._transport = Transport(
            api_key=resolve_api_key(api_key),
            base_url=resolve_base_url(base_url),
            timeout=Timeout.coerce(timeout),
            max_retries=max_retries,
            limits=limits,
            session=session,
            retry_policy=retry_policy,
            hooks=hooks,
            allow_insecure_http=allow_insecure_http,
            default_headers=headers,
            trust_env=trust_env,
            proxy=proxy,
        )
        self.embed = Embed(self._transport)
        """Embedding tasks: ``embed.v2.tasks`` and ``embed.v1.tasks`` (alias ``embed.tasks``)."""
        self.analyze = Analyze(self._transport)
        """Analysis tasks and batches: ``analyze.tasks``, ``analyze.batches``."""
        self.analyze_async = self.analyze
        """The official SDK's name for ``analyze``."""
        self.assets = Assets(self._transport)
        """Assets: uploaded media files (``create``, ``retrieve``, ``list``, ``delete``,
        ``wait``)."""
        self.multipart_upload = MultipartUpload(self._transport, self.assets)
        """Multipart uploads of large local files (``upload_file`` and the low-level calls)."""

    def __repr__(self) -> str:
        state = "closed" if self._transport.closed else "open"
        return f"<AsyncTwelveLabs base_url={self._transport.base_url!r} {state}>"

    @property
    def base_url(self) -> str:
        """The API root every path is joined to."""
        return self._transport.base_url

    @property
    def hooks(self) -> EventHooks:
        """The ``on_request`` / ``on_response`` callback lists (append to them)."""
        return self._transport.hooks

    @property
    def is_closed(self) -> bool:
        """Whether the client was closed."""
        return self._transport.closed

    async def __aenter__(self) -> AsyncTwelveLabs:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session (if the client created it). Safe to call twice."""
        await self._transport.aclose()

    def _resources(self) -> dict[WatchKind, TaskResource[Any, Any, Any]]:
        return {
            "embed_v2": self.embed.v2.tasks,
            "embed_v1": self.embed.v1.tasks,
            "analyze": self.analyze.tasks,
            "asset": self.assets,
            "analyze_batch": self.analyze.batches,
        }

    def poller(
        self,
        *,
        options: PollerOptions | None = None,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        timeout: float | None = _DEFAULT,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        on_change: Callable[[StatusChange], None] | None = None,
        sweep: bool | None = None,
        max_retries: int | None = None,
        target_delay: float | None = None,
        requests_per_task: float | None = None,
        gate: RequestGate | None = None,
    ) -> Poller:
        """A :class:`Poller` watching tasks of any kind until each is final.

        Every knob lives in :class:`PollerOptions` (pass ``options=``); the keywords below
        are shortcuts that override it when given.

        Args:
            options: the poller's knobs, defined once (see :class:`PollerOptions`).
            max_concurrency: the most requests in flight at once (default 16).
            requests_per_minute: a hard cap on the poller's request rate (retries included).
            timeout: each task's deadline in seconds from when it is added (default 6 h;
                ``None``: none).
            poll_interval: the first delay between two checks of a task (default 2 s)...
            max_poll_interval: ...growing with jitter up to this cap (default 30 s).
            on_change: called with a :class:`StatusChange` on every status transition.
            sweep: learn about many tasks per request from the list endpoints (default on).
            max_retries: transport retries of each request (the poller also re-polls).
            target_delay: median delay wanted between a task finishing and its delivery.
            requests_per_task: request budget per task of a sweeping poller.
            gate: a :class:`RequestGate` to pace requests with, shared with other work
                (then ``requests_per_minute`` is ignored: the gate's own limit applies).
        """
        self._transport.check_open()
        merged = options_from(
            options,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            sweep=sweep,
            max_retries=max_retries,
            target_delay=target_delay,
            requests_per_task=requests_per_task,
            **({} if timeout is _DEFAULT else {"timeout": timeout}),
        )
        return Poller(self._transport, self._resources(), merged, on_change=on_change, gate=gate)

    async def wait_all(
        self,
        *,
        embed_v2: Iterable[str] = (),
        embed_v1: Iterable[str] = (),
        analyze: Iterable[str] = (),
        options: PollerOptions | None = None,
        timeout: float | None = _DEFAULT,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        on_change: Callable[[StatusChange], None] | None = None,
        sweep: bool | None = None,
        max_retries: int | None = None,
        target_delay: float | None = None,
        requests_per_task: float | None = None,
    ) -> dict[str, Outcome]:
        """Wait for every given task; return ``{task_id: Outcome}``.

        Takes the same knobs as :meth:`poller`. Failed, canceled, timed-out and missing tasks
        are outcomes, not exceptions; only a refused key (401/403) raises.
        """
        results: dict[str, Outcome] = {}
        async with self.poller(
            options=options,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            on_change=on_change,
            sweep=sweep,
            max_retries=max_retries,
            target_delay=target_delay,
            requests_per_task=requests_per_task,
        ) as poller:
            poller.add(self.embed.v2.tasks, embed_v2)
            poller.add(self.embed.v1.tasks, embed_v1)
            poller.add(self.analyze.tasks, analyze)
            async for outcome in poller.as_completed():
                results[outcome.task_id] = outcome
        return results
