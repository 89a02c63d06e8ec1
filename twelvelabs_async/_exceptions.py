"""Every error twelvelabs-async raises, in one tree.

::

    TwelveLabsError
    ├── ClientClosedError (a RuntimeError)        the client was used after aclose()
    ├── MissingAPIKeyError (a ValueError)         no key given and none in the environment
    ├── APIError                                  something went wrong talking to the API
    │   ├── APIConnectionError                    refused, reset, dropped, cut-off body
    │   │   ├── APITimeoutError                   connect, read or total timeout elapsed
    │   │   └── APIProtocolError                  a response that breaks HTTP (bad framing)
    │   ├── ResponseDecodeError                   a 2xx body that is not JSON or off-model
    │   │   └── ResponseTooLargeError             a body over the configured max_response_size
    │   ├── PaginationError                       a list endpoint that ignores the page asked for
    │   └── APIStatusError                        the API answered with a 4xx/5xx status
    │       ├── BadRequestError                   400
    │       ├── AuthenticationError               401 (invalid or expired key)
    │       ├── PermissionDeniedError             403
    │       ├── NotFoundError                     404
    │       ├── ConflictError                     409
    │       ├── UnprocessableEntityError          422
    │       ├── RateLimitError                    429
    │       └── InternalServerError               >= 500
    ├── TaskError                                 a waited-for task did not end well
    │   ├── TaskFailedError                       ended failed/canceled and raise_on_failure=True
    │   └── TaskTimeoutError (also TimeoutError)  the task's deadline passed before it was final
    ├── InvalidFileError (a ValueError)           a local file refused before any request
    ├── UploadError                               a multipart upload could not finish (resumable)
    └── WebhookError                              see twelvelabs_async.webhooks
        ├── WebhookSignatureError                 TL-Signature missing, malformed or wrong
        │   └── WebhookTimestampError             authentic, but outside the tolerance (replay?)
        └── WebhookPayloadError                   the body is not a webhook event

Other 4xx statuses (408, 410, 413, ...) raise plain :class:`APIStatusError`. The same status maps
to the same class on every endpoint. No message, repr or attribute of these errors ever holds
the API key: requests are described by method and path only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._types import WatchKind

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIProtocolError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "InternalServerError",
    "InvalidFileError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "TaskError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TwelveLabsError",
    "UnprocessableEntityError",
    "UploadError",
    "WebhookError",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "WebhookTimestampError",
]


class TwelveLabsError(Exception):
    """Base class of every error raised by twelvelabs-async."""


class ClientClosedError(TwelveLabsError, RuntimeError):
    """The client (or the session it was given) is closed and cannot send requests."""


class MissingAPIKeyError(TwelveLabsError, ValueError):
    """No API key was passed and neither environment variable holds one."""


class APIError(TwelveLabsError):
    """A request to the API did not produce a usable response.

    Attributes:
        method: HTTP method of the request.
        path: the request path (no host, no query string, no credentials).
        retries: how many retries were made before giving up.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "", retries: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.retries = retries

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        suffix = f" (after {self.retries} retries)" if self.retries else ""
        return f"{self.message} [{where}]{suffix}" if where else f"{self.message}{suffix}"


class APIConnectionError(APIError):
    """The connection failed before a complete response arrived (refused, reset, cut-off body).

    Attributes:
        request_sent: ``False`` only when the last attempt surely never reached the server
            (connection refused, name not resolved, TLS or connect failure, no free pooled
            connection); ``True`` when it may have been received and acted on.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        retries: int = 0,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message, method=method, path=path, retries=retries)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read or total)."""


class APIProtocolError(APIConnectionError):
    """The response broke HTTP itself: a header line over 8 KB, a bad character, a bad status
    line or conflicting ``Content-Length`` / ``Transfer-Encoding`` (often a proxy's, WAF's or
    CDN's error page). Retried like a dropped connection (idempotent requests only)."""


class PaginationError(APIError):
    """A list endpoint answered a page other than the one asked for (the same items again,
    or another ``page_info.page``): walking on would never end, so the walk stops.

    Attributes:
        page: the page number that was asked for.
    """

    def __init__(self, message: str, *, page: int, method: str = "GET", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.page = page


class ResponseDecodeError(APIError):
    """A successful (2xx) response whose body is not JSON or does not fit the expected model.

    Attributes:
        status_code: HTTP status of the response.
        body_excerpt: at most the first 200 characters of the body, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        method: str = "",
        path: str = "",
        body_excerpt: str = "",
        retries: int = 0,
    ) -> None:
        super().__init__(message, method=method, path=path, retries=retries)
        self.status_code = status_code
        self.body_excerpt = body_excerpt


class ResponseTooLargeError(ResponseDecodeError):
    """The response body is larger than the client's ``max_response_size``."""


class APIStatusError(APIError):
    """The API answered with an error status.

    Attributes:
        status_code: the HTTP status.
        code: the API's machine-readable error code (``"resource_not_exist"``), or ``None``.
        message: the API's human-readable message, or a generic one for an empty body.
        headers: the response headers (case-insensitive mapping).
        retries: how many retries were made before this error was raised.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "",
        path: str = "",
        retries: int = 0,
        body: Any = None,
    ) -> None:
        super().__init__(message, method=method, path=path, retries=retries)
        self.status_code = status_code
        self.code = code
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        base = f"{self.status_code}{code}: {self.message}"
        where = f"{self.method} {self.path}".strip()
        suffix = f" (after {self.retries} retries)" if self.retries else ""
        return f"{base} [{where}]{suffix}" if where else f"{base}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"message={self.message!r}, path={self.path!r})"
        )


class BadRequestError(APIStatusError):
    """400: the request was invalid (see ``code``, e.g. ``parameter_invalid``)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid or expired (keys expire every 90 days)."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this endpoint (plan, region)."""


class NotFoundError(APIStatusError):
    """404: the task does not exist (never created, deleted, or past the 7-day retention)."""


class ConflictError(APIStatusError):
    """409: the task is in a state that forbids the operation (e.g. deleting a running task)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but cannot be processed."""


class RateLimitError(APIStatusError):
    """429: the rate limit was exceeded; ``headers`` carries ``Retry-After`` when sent."""


class InternalServerError(APIStatusError):
    """5xx: the API failed; retried automatically for idempotent requests."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status (the same on every endpoint)."""
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


class TaskError(TwelveLabsError):
    """A waited-for task did not end with a usable result.

    Attributes:
        task_id: the task's id.
        kind: ``"embed_v2"``, ``"embed_v1"``, ``"analyze"``, ``"asset"`` or ``"analyze_batch"``.
        task: the last task model retrieved, or ``None``.
    """

    def __init__(self, message: str, *, task_id: str, kind: WatchKind, task: Any = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.kind = kind
        self.task = task


class TaskFailedError(TaskError):
    """The task ended ``failed`` (or ``canceled``); raised only with ``raise_on_failure=True``.

    Attributes:
        status: the final status.
        error_message: the task's own error message, if it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        kind: WatchKind,
        task: Any,
        status: str,
        error_message: str | None,
    ) -> None:
        super().__init__(message, task_id=task_id, kind=kind, task=task)
        self.status = status
        self.error_message = error_message


class TaskTimeoutError(TaskError, TimeoutError):
    """The task's deadline passed before it reached a final status.

    Attributes:
        last_error: the last transient error seen while polling, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        kind: WatchKind,
        task: Any = None,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, task_id=task_id, kind=kind, task=task)
        self.last_error = last_error


class InvalidFileError(TwelveLabsError, ValueError):
    """A local file (or file-like input) was refused before any request was sent: missing, a
    directory, empty, too large for the chosen upload, or not binary."""


class UploadError(TwelveLabsError):
    """A multipart upload could not finish. Rerun ``upload_file(..., upload_id=...)`` to
    resume: the parts the server already recorded are not sent again.

    Attributes:
        upload_id: the upload session, ``None`` if none was created.
        chunk_index: the part that failed (1-based), if one part is to blame.
    """

    def __init__(
        self, message: str, *, upload_id: str | None = None, chunk_index: int | None = None
    ) -> None:
        super().__init__(message)
        self.upload_id = upload_id
        self.chunk_index = chunk_index


class WebhookError(TwelveLabsError):
    """Base class for webhook verification and parsing errors."""


class WebhookSignatureError(WebhookError):
    """The ``TL-Signature`` header is missing or malformed, or no signature in it matches the
    body and the webhook secret: reject the request (answer 400 or 401)."""


class WebhookTimestampError(WebhookSignatureError):
    """The signature is valid but its timestamp ``t`` is further from now than the tolerance
    (five minutes by default): a delayed or replayed delivery.

    Attributes:
        timestamp: the header's ``t`` (Unix seconds).
        now: the time it was compared against.
    """

    def __init__(self, message: str, *, timestamp: int, now: float) -> None:
        super().__init__(message)
        self.timestamp = timestamp
        self.now = now


class WebhookPayloadError(WebhookError):
    """The (authentic) body is not a webhook event: not JSON, or no ``id``/``type``/``data``."""
