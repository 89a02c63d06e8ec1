"""twelvelabs-async: an asyncio-first client for TwelveLabs' long-running tasks.

Embedding tasks (Embed v2 and v1) and analysis tasks: create, list, retrieve, cancel, delete,
and watch thousands of them until each is final, with few requests and a shared rate limit.

>>> from twelvelabs_async import AsyncTwelveLabs
>>> async def main() -> None:  # doctest: +SKIP
...     async with AsyncTwelveLabs() as client:
...         task = await client.embed.v2.tasks.wait("64f8d2c7e4a1b37f8a9c5d12", timeout=600)
"""

from ._bulk import BulkItem, BulkJob, BulkResult, BulkStats, export_results
from ._client import AsyncTwelveLabs
from ._config import Limits, RetryPolicy, Timeout, is_testing, set_testing
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIProtocolError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    InvalidFileError,
    MissingAPIKeyError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
    TwelveLabsError,
    UnprocessableEntityError,
    UploadError,
    WebhookError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from ._paginator import AsyncPaginator
from ._poller import Outcome, Poller, PollerStats, StatusChange
from ._polling import PollerOptions
from ._ratelimit import RequestGate
from ._transport import EventHooks, RequestOptions, ResponseEvent
from ._types import (
    ANALYZE_FINAL_STATUSES,
    EMBED_FINAL_STATUSES,
    TaskKind,
    TaskStatus,
    WatchKind,
)
from ._version import __version__
from .types import (
    AnalyzeBatch,
    AnalyzeBatchCreated,
    AnalyzeTask,
    Asset,
    BatchResultItem,
    EmbeddingTask,
    EmbedV1Task,
    EmbedV1TaskStatus,
    Float32Vector,
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
    "APIProtocolError",
    "APIStatusError",
    "APITimeoutError",
    "AnalyzeBatch",
    "AnalyzeBatchCreated",
    "AnalyzeTask",
    "AnalyzeTaskEvent",
    "Asset",
    "AsyncPaginator",
    "AsyncTwelveLabs",
    "AuthenticationError",
    "BadRequestError",
    "BatchResultItem",
    "BulkItem",
    "BulkJob",
    "BulkResult",
    "BulkStats",
    "ClientClosedError",
    "ConflictError",
    "EmbedV1Task",
    "EmbedV1TaskStatus",
    "EmbeddingTask",
    "EventHooks",
    "Float32Vector",
    "IndexTaskEvent",
    "InternalServerError",
    "InvalidFileError",
    "Limits",
    "MediaEmbeddingTask",
    "MissingAPIKeyError",
    "NotFoundError",
    "Outcome",
    "PageInfo",
    "PaginationError",
    "PermissionDeniedError",
    "Poller",
    "PollerOptions",
    "PollerStats",
    "RateLimitError",
    "RequestGate",
    "RequestOptions",
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
    "UploadError",
    "WatchKind",
    "WebhookDeduplicator",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookReceiver",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "__version__",
    "export_results",
    "is_testing",
    "set_testing",
]


# Public names show the package as their home (``twelvelabs_async.NotFoundError``, not
# ``twelvelabs_async._exceptions.NotFoundError``) in reprs, tracebacks and docs, as httpx does.
# msgspec models keep their public module (``twelvelabs_async.types``...): msgspec evaluates
# their annotations in the namespace of the module they name.
def _rehome() -> None:
    from msgspec import Struct

    for name in __all__:
        value = globals()[name]
        if isinstance(value, type) and not issubclass(value, Struct):
            value.__module__ = __name__


_rehome()
