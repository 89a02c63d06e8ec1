"""Small pieces every route family of the fake server shares: the handler seam and helpers."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec
from aiohttp import web

__all__ = [
    "Handler",
    "ParamError",
    "Reply",
    "page_info",
    "paging",
    "parse_rfc3339_ms",
    "read_json",
    "redact",
]

Reply = tuple[int, bytes]
"""What a handler answers: the status and the body (JSON unless a handler sets a type)."""

Handler = Callable[[web.BaseRequest, "str | None", float, dict[str, str]], Awaitable[Reply]]
"""One route's behaviour: ``(request, decoded id or None, server clock, response headers)``.
A handler may add response headers (``ETag``, ``Content-Type``) to the dict it is given."""

MAX_PAGE_LIMIT: Final = 50
_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"\s*([Zz]|[+\- ]\d{2}:?\d{2})?)?$"
)


class ParamError(Exception):
    """A bad request parameter: the app answers 400 ``parameter_invalid`` in the route's
    envelope."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_rfc3339_ms(value: str, *, upper: bool) -> int:
    """Parse an RFC 3339 timestamp to epoch ms (ceil for lower bounds, floor for upper)."""
    m = _RFC3339.match(value.strip())
    if m is None:
        raise ParamError(f"Invalid RFC 3339 date-time: {value!r}")
    year, mon, day, hh, mm, ss, frac, tz = m.groups()
    try:
        dt = datetime(
            int(year),
            int(mon),
            int(day),
            int(hh or 0),
            int(mm or 0),
            int(ss or 0),
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise ParamError(f"Invalid RFC 3339 date-time: {value!r}") from exc
    seconds = Decimal(int(dt.timestamp()))
    if frac:
        try:
            seconds += Decimal("0" + frac)
        except InvalidOperation as exc:  # pragma: no cover - regex guarantees digits
            raise ParamError(f"Invalid RFC 3339 date-time: {value!r}") from exc
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1  # a '+' may arrive as ' ' from a query string
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        seconds -= sign * offset
    ms = seconds * 1000
    return int(ms.to_integral_value(rounding="ROUND_FLOOR" if upper else "ROUND_CEILING"))


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text


def paging(q: Mapping[str, str]) -> tuple[int, int]:
    """``(page, page_limit)`` from a list request's query (defaults 1 and 10, limit <= 50)."""
    try:
        page = int(q.get("page", "1"))
    except ValueError:
        raise ParamError("The page parameter must be an integer.") from None
    try:
        limit = int(q.get("page_limit", "10"))
    except ValueError:
        raise ParamError("The page_limit parameter must be an integer.") from None
    if page < 1:
        raise ParamError("The page parameter must be greater than or equal to 1.")
    if limit < 1 or limit > MAX_PAGE_LIMIT:
        raise ParamError(f"The page_limit parameter must be between 1 and {MAX_PAGE_LIMIT}.")
    return page, limit


def page_info(page: int, limit: int, total: int) -> dict[str, int]:
    """The four documented ``page_info`` fields."""
    return {
        "limit_per_page": limit,
        "page": page,
        "total_page": math.ceil(total / limit),
        "total_results": total,
    }


async def read_json(request: web.BaseRequest) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`ParamError`."""
    raw = await request.read()
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ParamError("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ParamError("The request body must be a JSON object.")
    return data
