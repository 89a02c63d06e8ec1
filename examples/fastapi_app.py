"""A FastAPI service on twelvelabs-async: one client per application, handed to handlers.

Run it with ``uvicorn examples.fastapi_app:app`` (the key and URL come from
``TWELVELABS_API_KEY`` / ``TWELVELABS_BASE_URL``; try it against ``twelvelabs-async
fake-server``). Endpoints:

* ``POST /analyses`` starts an analysis task and answers **202** with its id;
* ``GET /tasks/{kind}/{task_id}`` is the task as it is now (**404** if there is none);
* ``GET /tasks/{kind}/{task_id}/wait?timeout=30`` waits for the task to be final, with a
  deadline: **504** when it passes, **404** for no such task;
* ``POST /tasks/progress`` streams the outcome of many tasks as each becomes final, as JSON
  lines (or server-sent events with ``Accept: text/event-stream``), from one poller that
  lives exactly as long as the response;
* ``POST /webhooks/twelvelabs`` (with ``TWELVELABS_WEBHOOK_SECRET`` set) verifies TwelveLabs
  webhooks and wakes the pollers of open progress streams, so notified tasks arrive at once.

FastAPI is a dependency of this example only, never of the library.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import msgspec
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.types import Message, Receive, Scope, Send

from twelvelabs_async import (
    APIError,
    AsyncTwelveLabs,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TaskKind,
    TaskTimeoutError,
    WebhookError,
    WebhookReceiver,
)
from twelvelabs_async.webhooks import SIGNATURE_HEADER

KindName = Literal["embed-v2", "embed-v1", "analyze"]
KINDS: dict[str, TaskKind] = {"embed-v2": "embed_v2", "embed-v1": "embed_v1", "analyze": "analyze"}
MAX_STREAM_TASKS = 10_000


@dataclass(frozen=True)
class Settings:
    """Knobs of one application (tests shorten the polling intervals)."""

    poll_interval: float | None = None
    max_poll_interval: float | None = None


# --- the client: one per application, opened and closed by the lifespan ---------------------


def get_client(request: Request) -> AsyncTwelveLabs:
    """Dependency: the application's client (one connection pool for every request)."""
    client: AsyncTwelveLabs = request.app.state.twelvelabs
    return client


def get_settings(request: Request) -> Settings:
    """Dependency: the application's settings."""
    settings: Settings = request.app.state.settings
    return settings


Client = Annotated[AsyncTwelveLabs, Depends(get_client)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def resource_for(client: AsyncTwelveLabs, kind: TaskKind) -> Any:
    """The task resource of ``kind``."""
    return {
        "embed_v2": client.embed.v2.tasks,
        "embed_v1": client.embed.v1.tasks,
        "analyze": client.analyze.tasks,
    }[kind]


def task_response(task: Any, status_code: int = 200) -> Response:
    """A task model as JSON (msgspec encodes it directly)."""
    return Response(msgspec.json.encode(task), status_code, media_type="application/json")


# --- request and response bodies -------------------------------------------------------------


class AnalysisRequest(BaseModel):
    """What to analyse."""

    video_url: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    custom_id: str | None = None


class Created(BaseModel):
    """The id of a started task."""

    task_id: str
    status: str


class ProgressRequest(BaseModel):
    """The tasks to follow, by kind, and each one's deadline in seconds."""

    embed_v2: list[str] = []
    embed_v1: list[str] = []
    analyze: list[str] = []
    timeout: float = Field(600.0, gt=0, le=6 * 3600)


# --- endpoints -------------------------------------------------------------------------------

router = APIRouter()


@router.post("/analyses", status_code=202, response_model=Created)
async def create_analysis(body: AnalysisRequest, client: Client, response: Response) -> Created:
    """Start an analysis task; answer 202 at once with its id (poll, wait or stream it)."""
    created = await client.analyze.tasks.create(
        video={"type": "url", "url": body.video_url},
        prompt=body.prompt,
        custom_id=body.custom_id,
    )
    response.headers["Location"] = f"/tasks/analyze/{created.task_id}"
    return Created(task_id=created.task_id, status=created.status)


@router.get("/tasks/{kind}/{task_id}")
async def get_task(kind: KindName, task_id: str, client: Client) -> Response:
    """The task as it is now (404 if it does not exist)."""
    task = await resource_for(client, KINDS[kind]).retrieve(task_id)
    return task_response(task)


@router.get("/tasks/{kind}/{task_id}/wait")
async def wait_for_task(
    kind: KindName,
    task_id: str,
    client: Client,
    settings: AppSettings,
    timeout: Annotated[float, Query(gt=0, le=3600)] = 30.0,
) -> Response:
    """Wait until the task is final; 504 if ``timeout`` passes first, 404 if it does not exist.

    Failed and canceled tasks are answered 200: the body says how the task ended.
    """
    task = await resource_for(client, KINDS[kind]).wait(
        task_id,
        timeout=timeout,
        poll_interval=settings.poll_interval,
        max_poll_interval=settings.max_poll_interval,
    )
    return task_response(task)


@router.post("/tasks/progress")
async def stream_progress(
    body: ProgressRequest, request: Request, client: Client, settings: AppSettings
) -> Response:
    """Stream each task's outcome as soon as it is final, then a summary.

    JSON lines by default; server-sent events when the request accepts
    ``text/event-stream``. Every line/event: ``{"event": "outcome", "task_id", "kind",
    "status", "error", "done", "total"}``; the last: ``{"event": "end", ...counts}``.
    """
    tasks: dict[TaskKind, list[str]] = {
        "embed_v2": body.embed_v2,
        "embed_v1": body.embed_v1,
        "analyze": body.analyze,
    }
    total = sum(len(set(ids)) for ids in tasks.values())
    if not 0 < total <= MAX_STREAM_TASKS:
        return JSONResponse(
            {"detail": f"give between 1 and {MAX_STREAM_TASKS} task ids"}, status_code=422
        )
    sse = "text/event-stream" in request.headers.get("accept", "")
    return OutcomeStream(
        client,
        tasks,
        timeout=body.timeout,
        settings=settings,
        receiver=request.app.state.webhooks,
        sse=sse,
    )


@router.post("/webhooks/twelvelabs", status_code=204)
async def twelvelabs_webhook(request: Request) -> Response:
    """Verify a TwelveLabs webhook (raw body + ``TL-Signature``), drop repeats, and wake the
    pollers of open progress streams. 400 for a bad signature, 404 when not configured."""
    receiver: WebhookReceiver | None = request.app.state.webhooks
    if receiver is None:
        return JSONResponse({"detail": "webhooks are not configured"}, status_code=404)
    body = await request.body()
    try:
        receiver.receive(body, request.headers.get(SIGNATURE_HEADER))
    except WebhookError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    return Response(status_code=204)


# --- streaming: a poller that lives exactly as long as the response ---------------------------


class OutcomeStream(Response):
    """A streaming response that runs a poller inside its own ``__call__``.

    The poller's task group opens and closes in the same task as the response, and a client
    that disconnects cancels it at once: no generator is left holding a poller open.
    """

    def __init__(
        self,
        client: AsyncTwelveLabs,
        tasks: dict[TaskKind, list[str]],
        *,
        timeout: float,
        settings: Settings,
        receiver: WebhookReceiver | None,
        sse: bool,
    ) -> None:
        super().__init__(media_type="text/event-stream" if sse else "application/x-ndjson")
        self.raw_headers.append((b"cache-control", b"no-cache"))
        self.client = client
        self.tasks = tasks
        self.timeout = timeout
        self.settings = settings
        self.receiver = receiver
        self.sse = sse

    def frame(self, event: dict[str, Any]) -> bytes:
        """One JSON line, or one server-sent event."""
        data = msgspec.json.encode(event)
        if self.sse:
            name = str(event["event"]).encode()
            return b"event: " + name + b"\ndata: " + data + b"\n\n"
        return data + b"\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the head, then one frame per outcome until every task is delivered."""
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        disconnected = False

        async def until_disconnect(scope: anyio.CancelScope) -> None:
            nonlocal disconnected
            message: Message = {}
            while message.get("type") != "http.disconnect":
                message = await receive()
            disconnected = True
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(until_disconnect, group.cancel_scope)
            await self.stream(send)
            group.cancel_scope.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def stream(self, send: Send) -> None:
        """Watch every task and send each outcome as it comes."""
        total = sum(len(set(ids)) for ids in self.tasks.values())
        done = 0
        counts: dict[str, int] = {}
        end: dict[str, Any] = {"event": "end"}
        try:
            async with self.client.poller(
                timeout=self.timeout,
                poll_interval=self.settings.poll_interval,
                max_poll_interval=self.settings.max_poll_interval,
            ) as poller:
                attached = self.receiver.attached(poller) if self.receiver else nullcontext()
                with attached:
                    for kind, ids in self.tasks.items():
                        poller.add(resource_for(self.client, kind), ids)
                    async for outcome in poller.as_completed():
                        done += 1
                        counts[outcome.status] = counts.get(outcome.status, 0) + 1
                        error = outcome.error or getattr(outcome.task, "error_message", None)
                        event = {
                            "event": "outcome",
                            "task_id": outcome.task_id,
                            "kind": outcome.kind,
                            "status": outcome.status,
                            "error": None if error is None else str(error),
                            "done": done,
                            "total": total,
                        }
                        await send(
                            {
                                "type": "http.response.body",
                                "body": self.frame(event),
                                "more_body": True,
                            }
                        )
                end["requests"] = poller.stats.requests
        except APIError as exc:  # e.g. the key was refused: the head is already sent
            end["error"] = str(exc)
        end.update(done=done, total=total, counts=counts)
        await send({"type": "http.response.body", "body": self.frame(end), "more_body": True})


# --- errors -> HTTP statuses -------------------------------------------------------------------


async def not_found(request: Request, exc: Exception) -> Response:
    """404: no such task."""
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def timed_out(request: Request, exc: Exception) -> Response:
    """504: the task was not final before the deadline (it keeps running)."""
    assert isinstance(exc, TaskTimeoutError)
    last = getattr(exc.task, "status", None)
    return JSONResponse(
        {"detail": str(exc), "task_id": exc.task_id, "last_status": last}, status_code=504
    )


async def upstream_error(request: Request, exc: Exception) -> Response:
    """502: TwelveLabs refused the key or failed."""
    refused = isinstance(exc, (AuthenticationError, PermissionDeniedError))
    detail = "the TwelveLabs API refused our key" if refused else f"TwelveLabs API error: {exc}"
    return JSONResponse({"detail": detail}, status_code=502)


# --- the application -------------------------------------------------------------------------


def create_app(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    webhook_secret: str | None = None,
    poll_interval: float | None = None,
    max_poll_interval: float | None = None,
) -> FastAPI:
    """The application. Arguments left out come from the environment (``TWELVELABS_API_KEY``,
    ``TWELVELABS_BASE_URL``, ``TWELVELABS_WEBHOOK_SECRET``) when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the whole application, closed when it stops.
        async with AsyncTwelveLabs(api_key=api_key, base_url=base_url) as client:
            app.state.twelvelabs = client
            yield

    app = FastAPI(title="twelvelabs-async example", lifespan=lifespan)
    app.state.settings = Settings(poll_interval, max_poll_interval)
    secret = webhook_secret or os.environ.get("TWELVELABS_WEBHOOK_SECRET")
    app.state.webhooks = WebhookReceiver(secret) if secret else None
    app.include_router(router)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(TaskTimeoutError, timed_out)
    app.add_exception_handler(APIError, upstream_error)
    return app


app = create_app()
"""For ``uvicorn examples.fastapi_app:app``."""
