"""twelvelabs-async: an asyncio-first client for TwelveLabs' long-running tasks.

Embedding tasks (Embed v2 and v1) and analysis tasks: create, list, retrieve, cancel, delete,
and watch thousands of them until each is final, with few requests and a shared rate limit.

>>> from twelvelabs_async import AsyncTwelveLabs
>>> async def main() -> None:  # doctest: +SKIP
...     async with AsyncTwelveLabs() as client:
...         task = await client.embed.v2.tasks.wait("64f8d2c7e4a1b37f8a9c5d12", timeout=600)
"""

from ._client import AsyncTwelveLabs
from ._config import RetryPolicy, Timeout, is_testing, set_testing
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    MissingAPIKeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
    TwelveLabsError,
    UnprocessableEntityError,
    WebhookError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from ._paginator import AsyncPaginator
from ._poller import Outcome, Poller, PollerStats, StatusChange
from ._polling import PollerOptions
from ._transport import EventHooks, ResponseEvent
from ._types import ANALYZE_FINAL_STATUSES, EMBED_FINAL_STATUSES, TaskKind, TaskStatus
from ._version import __version__
from .types import (
    AnalyzeTask,
    EmbeddingTask,
    EmbedV1Task,
    EmbedV1TaskStatus,
    MediaEmbeddingTask,
    PageInfo,
    TaskPage,
)
from .webhooks import (
    AnalyzeTaskEvent,
    IndexTaskEvent,
    UnknownWebhookEvent,
    WebhookDeduplicator,
    WebhookEvent,
    WebhookReceiver,
)

__all__ = [
    "ANALYZE_FINAL_STATUSES",
    "EMBED_FINAL_STATUSES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AnalyzeTask",
    "AnalyzeTaskEvent",
    "AsyncPaginator",
    "AsyncTwelveLabs",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "EmbedV1Task",
    "EmbedV1TaskStatus",
    "EmbeddingTask",
    "EventHooks",
    "IndexTaskEvent",
    "InternalServerError",
    "MediaEmbeddingTask",
    "MissingAPIKeyError",
    "NotFoundError",
    "Outcome",
    "PageInfo",
    "PermissionDeniedError",
    "Poller",
    "PollerOptions",
    "PollerStats",
    "RateLimitError",
    "ResponseDecodeError",
    "ResponseEvent",
    "ResponseTooLargeError",
    "RetryPolicy",
    "StatusChange",
    "TaskError",
    "TaskFailedError",
    "TaskKind",
    "TaskPage",
    "TaskStatus",
    "TaskTimeoutError",
    "Timeout",
    "TwelveLabsError",
    "UnknownWebhookEvent",
    "UnprocessableEntityError",
    "WebhookDeduplicator",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookReceiver",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "__version__",
    "is_testing",
    "set_testing",
]
