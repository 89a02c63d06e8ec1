"""The C accelerator for vectors (``twelvelabs_async._speedups``) against the pure-Python path.

The accelerator parses a vector's JSON text straight into float32. Its contract is to give
exactly what the pure path gives (msgspec's correctly rounded double for each number, then
rounded to float32, with the same numbers refused), and, on any bytes at all, to return or
raise ``ValueError``, never crash. These tests hold it to that with generated numbers of every
spelling (including ones placed a hair from a float32 rounding boundary, where its shortcut
must step aside), arbitrary and mutated bytes, and whole bodies decoded both ways.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from twelvelabs_async import EmbeddingTask, EmbedV1Task
from twelvelabs_async._decode import decoder_for
from twelvelabs_async.types import EmbeddingData, _vector

speedups = pytest.importorskip(
    "twelvelabs_async._speedups", reason="built without a C compiler: the pure path only"
)
parse = speedups.parse_float32_array
reference_decoder = msgspec.json.Decoder(list[float])
in_use = pytest.mark.skipif(
    not _vector.ACCELERATED,
    reason="TWELVELABS_ASYNC_NO_EXTENSIONS is set: the models use the pure path",
)

# Ordinary numbers around the ones under test: the accelerator reads a number with its quick
# path only when 24 bytes follow it, so the numbers under test sit both there and at the end.
PADDING = ["0.029931", "-0.044389", "0.5", "-0.000266", "0.017552", "0.070801"]


def reference(text: bytes) -> bytes | None:
    """The pure path's float32 bytes for ``text`` (``None`` where it refuses the text)."""
    try:
        values = reference_decoder.decode(text)
        return struct.pack(f"={len(values)}f", *values)
    except (msgspec.DecodeError, OverflowError):
        return None


def accelerated(text: bytes) -> bytes | None:
    try:
        out: bytes = parse(text)
    except ValueError:
        return None
    return out


def assert_same(text: bytes) -> None:
    expected, got = reference(text), accelerated(text)
    assert got == expected, (text[:300], expected, got)


def array_of(numbers: list[str], spaced: bool = False) -> bytes:
    sep = " , " if spaced else ","
    middle = sep.join([*PADDING, *numbers, *PADDING, *numbers])
    return f"[{middle}]".encode() if not spaced else f" [ {middle} ] ".encode()


# --- numbers of every spelling -----------------------------------------------------------------


@st.composite
def json_numbers(draw: Any) -> str:
    """A JSON number assembled from its grammar: sign, integer part, fraction, exponent, with
    lengths past 19 digits and exponents past any double."""
    sign = draw(st.sampled_from(["", "-"]))
    integer = draw(st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True)))
    fraction = draw(st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,25}", fullmatch=True)))
    exponent = draw(
        st.one_of(
            st.just(""),
            st.builds(
                lambda e, s, z, n: f"{e}{s}{z}{n}",
                st.sampled_from(["e", "E"]),
                st.sampled_from(["", "+", "-"]),
                st.sampled_from(["", "0", "00"]),
                st.integers(0, 400),
            ),
        )
    )
    return sign + integer + fraction + exponent


@st.composite
def printed_floats(draw: Any) -> str:
    """A double as a server might print it: repr, fixed, general or scientific at any
    precision (including float32 values printed as doubles)."""
    width = draw(st.sampled_from([32, 64]))
    value = draw(st.floats(allow_nan=False, allow_infinity=False, width=width))
    style = draw(st.sampled_from(["repr", "f", "g", "e"]))
    if style == "repr":
        return repr(value)
    digits = draw(st.integers(0, 20))
    text = f"{value:.{digits}{style}}"
    return text if text.lstrip("-")[:1].isdigit() else repr(value)


@st.composite
def near_boundaries(draw: Any) -> str:
    """A number within a few double ulps of a float32 rounding boundary (the midpoint between
    two neighbouring float32 values), or exactly on it: where a shortcut that rounds twice
    would go wrong."""
    bits = draw(st.integers(1, 0x7F7FFFFE))
    low = struct.unpack("<f", struct.pack("<I", bits))[0]
    high = struct.unpack("<f", struct.pack("<I", bits + 1))[0]
    midpoint = (low + high) / 2  # exact in double
    nudge = draw(st.integers(-3, 3))
    value = midpoint
    for _ in range(abs(nudge)):
        value = math.nextafter(value, math.copysign(math.inf, nudge))
    style = draw(st.sampled_from(["repr", "exact", "e17"]))
    if style == "exact":
        return format(Decimal(value), "f") if abs(value) > 1e-30 else repr(value)
    if style == "e17":
        return f"{value:.17e}"
    return repr(value)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(numbers=st.lists(json_numbers(), min_size=1, max_size=6), spaced=st.booleans())
@example(numbers=["-0"], spaced=False)
@example(numbers=["-0.0", "-0e0", "0e5", "-0.000"], spaced=False)
@example(numbers=["1" * 40, "0." + "0" * 60 + "1", "1e-400", "1e400"], spaced=False)
@example(numbers=["3.4028235677973362e38", "3.4028235677973366e38"], spaced=False)
@example(numbers=["12345678901234567890", "1234567.1234567890123", "0.1234567890123"], spaced=False)
@example(
    numbers=["98765432109876543210", "18446744073709551616", "9.8765432109876543"], spaced=True
)
@example(numbers=["0.00000000000000000000098765432109876543210e30"], spaced=False)
def test_grammar_numbers_parse_as_the_pure_path_does(numbers: list[str], spaced: bool) -> None:
    assert_same(array_of(numbers, spaced))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(numbers=st.lists(printed_floats(), min_size=1, max_size=6))
def test_printed_floats_parse_as_the_pure_path_does(numbers: list[str]) -> None:
    assert_same(array_of(numbers))


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(numbers=st.lists(near_boundaries(), min_size=1, max_size=4))
@example(numbers=["1.0000000596046448"])  # 1 + 2**-24: a tie, which rounds to even (1.0)
@example(numbers=["1.0000001788139343"])  # 1 + 3 * 2**-24: a tie, which rounds up
def test_numbers_at_float32_rounding_boundaries(numbers: list[str]) -> None:
    assert_same(array_of(numbers))


def test_exact_midpoints_short_enough_for_the_quick_path_round_to_even() -> None:
    # Between 2**11 and 2**23 a float32 midpoint has at most 7 integer and 13 fraction digits,
    # so the quick path reads it: an exact tie, which must round to the even neighbour (and
    # its nearest doubles on either side, printed exactly, must round away from the tie).
    import random

    rng = random.Random(7)
    numbers = []
    for exponent in range(11, 23):
        for _ in range(100):
            bits = ((exponent + 127) << 23) | rng.getrandbits(23)
            low = struct.unpack("<f", struct.pack("<I", bits))[0]
            high = struct.unpack("<f", struct.pack("<I", bits + 1))[0]
            midpoint = (low + high) / 2
            numbers.append(format(Decimal(midpoint), "f"))
            numbers.append(format(Decimal(math.nextafter(midpoint, math.inf)), "f"))
            numbers.append(format(Decimal(math.nextafter(midpoint, -math.inf)), "f"))
    assert_same(array_of(numbers))
    assert parse(b"[8388608.5,8388609.5,0.5]") == struct.pack("=3f", 8388608, 8388610, 0.5)


def test_the_quick_path_reads_ordinary_vectors_exactly() -> None:
    import random

    rng = random.Random(12)
    for digits in range(1, 14):
        numbers = [f"{rng.uniform(-9.9, 9.9):.{digits}f}" for _ in range(2000)]
        numbers += [f"{rng.uniform(-1e6, 1e6):.{digits}f}" for _ in range(200)]
        assert_same(array_of(numbers))


# --- any bytes --------------------------------------------------------------------------------


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.binary(max_size=200))
@example(data=b"")
@example(data=b"[")
@example(data=b"]")
@example(data=b"[]")
@example(data=b" [ ] ")
@example(data=b"[,]")
@example(data=b"[1,]")
@example(data=b"[1 2]")
@example(data=b"[1]]")
@example(data=b"[[1]]")
@example(data=b'["1"]')
@example(data=b"[null]")
@example(data=b"[1e]")
@example(data=b"[-]")
@example(data=b"[.5]")
@example(data=b"[5.]")
@example(data=b"[+1]")
@example(data=b"[01]")
@example(data=b"[NaN]")
@example(data=b"[Infinity]")
@example(data=b"[1\x00]")
def test_arbitrary_bytes_give_the_pure_paths_answer(data: bytes) -> None:
    assert_same(data)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(
    numbers=st.lists(printed_floats(), min_size=3, max_size=12),
    at=st.integers(0, 10_000),
    edit=st.sampled_from(["delete", "insert", "replace"]),
    byte=st.sampled_from(list(b'0123456789.,-+eE[] \t\n\r"nx\x00\xff')),
)
def test_damaged_arrays_give_the_pure_paths_answer(
    numbers: list[str], at: int, edit: str, byte: int
) -> None:
    text = bytearray(array_of(numbers))
    at %= len(text)
    if edit == "delete":
        del text[at]
    elif edit == "insert":
        text.insert(at, byte)
    else:
        text[at] = byte
    assert_same(bytes(text))


def test_buffers_of_every_kind_and_clear_errors() -> None:
    text = b"[0.5,-1.25,3]"
    expected = struct.pack("=3f", 0.5, -1.25, 3.0)
    assert parse(text) == parse(bytearray(text)) == parse(memoryview(text)) == expected
    assert parse(msgspec.Raw(text)) == expected
    with pytest.raises(TypeError):
        parse("[0.5]")  # a str has no buffer
    with pytest.raises(ValueError, match="out of range at index 1"):
        parse(b"[0.5,1e39]")
    with pytest.raises(ValueError, match="expected a number at index 2"):
        parse(b'[0.5,1,"x"]')
    with pytest.raises(ValueError, match="expected ',' or ']'"):
        parse(b"[0.5 1]")
    with pytest.raises(ValueError, match="expected an array of numbers"):
        parse(b"null")


# --- whole bodies, both paths -----------------------------------------------------------------


def _bodies() -> dict[str, bytes]:
    numbers = [f"{(i * 7919 % 2001 - 1000) / 12345.0:.7g}" for i in range(3000)]
    v2 = {
        "_id": "t",
        "status": "ready",
        "data": [
            {"embedding": json.loads("[" + ",".join(numbers[:1024]) + "]")},
            {"embedding": [0.25, -0.0, 7], "embedding_uncertainty": None},
            {"embedding": [1e-45, 3.4028234e38], "embedding_uncertainty": [0.5]},
        ],
    }
    v1 = {"_id": "t", "video_embedding": {"segments": [{"float": [0.5, -2.5e-3, 1]}]}}
    return {"v2": json.dumps(v2).encode(), "v1": json.dumps(v1).encode()}


def _vectors_hex(bodies: dict[str, bytes]) -> list[str]:
    v2 = decoder_for(EmbeddingTask).decode(bodies["v2"])
    v1 = decoder_for(EmbedV1Task).decode(bodies["v1"])
    assert v2.data is not None
    assert v1.video_embedding is not None
    assert v1.video_embedding.segments is not None
    out = []
    for item in v2.data:
        out.append(item.embedding.tobytes().hex())
        uncertainty = item.embedding_uncertainty
        out.append("none" if uncertainty is None else uncertainty.tobytes().hex())
    out.extend(s.float_.tobytes().hex() for s in v1.video_embedding.segments)
    # MessagePack round trip: the Raw a MessagePack body hands over is MessagePack.
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(v2), type=EmbeddingTask)
    assert again == v2
    return out


_PURE_SCRIPT = """
import json, msgspec
from twelvelabs_async.types import EmbeddingData, _vector
from tests.test_vector_parser import _bodies, _vectors_hex
converted = msgspec.convert({"embedding": [0.5, 2]}, EmbeddingData).embedding.tolist()
print(json.dumps({"accelerated": _vector.ACCELERATED, "vectors": _vectors_hex(_bodies()),
                  "converted": converted}))
"""


@in_use
def test_the_pure_path_decodes_bodies_to_the_same_bytes() -> None:
    env = {**os.environ, "TWELVELABS_ASYNC_NO_EXTENSIONS": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", _PURE_SCRIPT],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pure = json.loads(done.stdout)
    assert pure["accelerated"] is False
    assert pure["converted"] == [0.5, 2.0]
    assert _vector.ACCELERATED is True
    assert pure["vectors"] == _vectors_hex(_bodies())


@in_use
def test_null_and_absent_uncertainty_and_a_null_vector() -> None:
    task = decoder_for(EmbeddingTask).decode(_bodies()["v2"])
    assert task.data is not None
    assert task.data[0].embedding_uncertainty is None
    assert task.data[1].embedding_uncertainty is None
    assert task.data[2].embedding_uncertainty is not None
    with pytest.raises(msgspec.ValidationError, match="embedding: expected an array of numbers"):
        decoder_for(EmbeddingTask).decode(b'{"_id":"t","data":[{"embedding":null}]}')
    with pytest.raises(msgspec.ValidationError, match=r"embedding: .*\$\.data\[0\]"):
        decoder_for(EmbeddingTask).decode(b'{"_id":"t","data":[{"embedding":{"a":1}}]}')


@in_use
def test_convert_from_python_objects_is_refused_with_a_typed_error() -> None:
    # With the accelerator the models decode from JSON or MessagePack bytes, or are built by
    # hand; msgspec.convert cannot fill a field that holds the array's text (documented in
    # docs/embeddings.md; without the accelerator convert works, as the pure path shows).
    with pytest.raises(msgspec.ValidationError, match="raw"):
        msgspec.convert({"embedding": [0.5]}, EmbeddingData)
    assert EmbeddingData(embedding=[0.5]).embedding.tolist() == [0.5]  # type: ignore[arg-type]
