"""Body decoding: one cached ``msgspec.json.Decoder`` per type, errors mapped to ours."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ._exceptions import ResponseDecodeError
from ._transport import Response
from .types._vector import decode_body

__all__ = ["decode", "decoder_for"]

T = TypeVar("T")

_decoders: dict[Any, Any] = {}


def decoder_for(tp: type[T]) -> msgspec.json.Decoder[T]:
    """The shared decoder for ``tp`` (built on first use, then reused)."""
    decoder: msgspec.json.Decoder[T] | None = _decoders.get(tp)
    if decoder is None:
        decoder = msgspec.json.Decoder(tp)
        _decoders[tp] = decoder
    return decoder


def decode(tp: type[T], response: Response) -> T:
    """Decode a successful response body into ``tp``, or raise :class:`ResponseDecodeError`."""
    try:
        return decode_body(decoder_for(tp), tp, response.body)
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as exc:
        raise ResponseDecodeError(
            f"Response body does not fit {getattr(tp, '__name__', tp)}: {exc}",
            status_code=response.status,
            method=response.method,
            path=response.path,
            body_excerpt=response.body[:200].decode("utf-8", "replace"),
            retries=response.retries,
        ) from None
