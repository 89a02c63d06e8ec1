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


# --- whole bodies in one pass (extract_vectors) -------------------------------------------------

extract = speedups.extract_vectors
V2_KEYS = ["embedding", "embedding_uncertainty"]


def plain_outcome(tp: type, body: bytes) -> Any:
    """What the ordinary decode gives (each vector through its Raw): the task, or the error's
    class."""
    try:
        return msgspec.json.Decoder(tp).decode(body)
    except msgspec.DecodeError as exc:
        return type(exc)


def one_pass_outcome(tp: type, body: bytes) -> Any:
    try:
        return _vector.decode_body(decoder_for(tp), tp, body)
    except msgspec.DecodeError as exc:
        return type(exc)


def assert_same_task(tp: type, body: bytes) -> None:
    plain, one_pass = plain_outcome(tp, body), one_pass_outcome(tp, body)
    if isinstance(plain, type) and issubclass(plain, msgspec.DecodeError):
        # the two may disagree on which error (the first one met differs): both must fail
        assert isinstance(one_pass, type), (body[:300], one_pass)
        assert issubclass(one_pass, msgspec.DecodeError), (body[:300], one_pass)
    else:
        assert one_pass == plain, body[:300]


vector_values = st.one_of(
    st.lists(st.sampled_from(PADDING), max_size=40).map(lambda xs: [float(x) for x in xs]),
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=12),
)
hostile_values = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(["embedding", "float", "a"]), st.integers(), max_size=2),
    st.lists(st.lists(st.integers(0, 3), max_size=2), max_size=2),
    st.just([1e39]),
)
decoys = st.dictionaries(
    st.sampled_from(["embedding", "float", "data", "segments", "note", "embedding_option"]),
    st.one_of(
        st.text(alphabet='ab"\\:[]{},embdingflot0123', max_size=12),
        st.lists(st.integers(0, 9), max_size=3),
        st.just({"embedding": [1, 2], "float": [3]}),
    ),
    max_size=3,
)


@st.composite
def v2_documents(draw: Any) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 4))):
        item: dict[str, Any] = dict(draw(decoys))
        for key in V2_KEYS:
            choice = draw(st.sampled_from(["vector", "vector", "absent", "null", "hostile"]))
            if choice == "vector":
                item[key] = draw(vector_values)
            elif choice == "null":
                item[key] = None
            elif choice == "hostile":
                item[key] = draw(hostile_values)
        items.append(item)
    doc: dict[str, Any] = {"_id": "t", "status": draw(st.sampled_from(["ready", "processing"]))}
    if draw(st.booleans()):
        doc["data"] = items
    doc.update(draw(decoys))
    doc["metadata"] = {"embedding": [1, 2], "note": '"embedding":[5]'}
    return _spell(draw, doc)


@st.composite
def v1_documents(draw: Any) -> bytes:
    segments = []
    for _ in range(draw(st.integers(0, 3))):
        segment: dict[str, Any] = dict(draw(decoys))
        choice = draw(st.sampled_from(["vector", "vector", "absent", "null", "hostile"]))
        if choice == "vector":
            segment["float"] = draw(vector_values)
        elif choice == "null":
            segment["float"] = None
        elif choice == "hostile":
            segment["float"] = draw(hostile_values)
        segments.append(segment)
    doc = {"_id": "t", "video_embedding": {"segments": segments, "float": [9.0]}, "float": [8]}
    return _spell(draw, doc)


def _spell(draw: Any, doc: Any) -> bytes:
    """``doc`` as JSON in one of several spellings: compact, spaced, indented, keys escaped."""
    style = draw(st.sampled_from(["compact", "spaced", "indented", "escaped", "damaged"]))
    if style == "compact":
        return json.dumps(doc, separators=(",", ":")).encode()
    if style == "spaced":
        return (" " + json.dumps(doc) + " \n").encode()
    if style == "indented":
        return json.dumps(doc, indent=draw(st.integers(0, 3))).encode()
    text = json.dumps(doc)
    if style == "escaped":
        # an escaped spelling of a key that msgspec reads as the same key
        for key in ("embedding", "float", "data", "segments"):
            if draw(st.booleans()):
                text = text.replace(
                    f'"{key}"', '"' + key[0] + "\\u00" + f"{ord(key[1]):02x}" + key[2:] + '"', 1
                )
        return text.encode()
    raw = bytearray(text.encode())
    at = draw(st.integers(0, max(len(raw) - 1, 0)))
    raw[at : at + 1] = draw(st.sampled_from([b"", b"]", b"}", b",", b'"', b"\\", b"[", b"0"]))
    return bytes(raw)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(body=v2_documents())
def test_v2_bodies_decode_in_one_pass_as_through_raw(body: bytes) -> None:
    assert_same_task(EmbeddingTask, body)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(body=v1_documents())
def test_v1_bodies_decode_in_one_pass_as_through_raw(body: bytes) -> None:
    assert_same_task(EmbedV1Task, body)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=120), layout=st.sampled_from([1, 2]))
@example(data=b'{"data":[{"embedding":[1,2]}]}', layout=2)
@example(data=b'{"data":[{"embedding":[1,2]}]}}', layout=2)
@example(data=b'{"data":[{"embedding":[1,2]}}]}', layout=2)
@example(data=b'{"data":[{"embedding":[1,2]]}', layout=2)
@example(data=b'{"data":[{"embedding":[' + b"[]," * 200 + b"[]]}]}", layout=2)
@example(data=b'{"data":[' + b'{"embedding":[]},' * 150 + b'{"embedding":[]}]}', layout=2)
@example(data=b'{"data":[{"embedding":"[1,2]"}]}', layout=2)
@example(data=b'{"data":[{"embedding":[1,2]}],"x":"\\\\"}', layout=2)
@example(data=b'{"d\\"ata":[{"embedding":[1,2]}]}', layout=2)
@example(data=b"[" * 100 + b"]" * 100, layout=2)
@example(data=b'{"a":' * 80 + b"1" + b"}" * 80, layout=2)
@example(data=b'{"video_embedding":{"segments":[{"float":[0.5]}]}}', layout=1)
def test_any_bytes_give_a_body_and_vectors_or_none(data: bytes, layout: int) -> None:
    got = extract(data, layout)
    if got is not None:
        stripped, vectors = got
        assert isinstance(stripped, bytes)
        assert len(stripped) <= len(data)
        assert vectors
        assert all(isinstance(v, bytes) and len(v) % 4 == 0 for v in vectors)
    assert_same_task(EmbeddingTask if layout == 2 else EmbedV1Task, data)


def test_one_pass_output_and_refusals() -> None:
    body = (
        b' {"_id":"t","data":[{"embedding":[0.5, -1],"embedding_uncertainty":null},'
        b'{"embedding":[]}]} '
    )
    stripped, vectors = extract(body, 2)
    assert (
        stripped
        == b'{"_id":"t","data":[{"embedding":0,"embedding_uncertainty":null},{"embedding":1}]}'
    )
    assert vectors == [struct.pack("=2f", 0.5, -1.0), b""]
    assert extract(b'{"_id":"t","status":"processing"}', 2) is None  # no vectors: as is
    assert extract(b'{"data":[{"embedding":[0.5,1e39]}]}', 2) is None  # out of range: as is
    assert extract(b'{"data":[{"embedding":{"a":1}}]}', 2) is None
    assert extract(b'{"data":[{"embe\\u0064ding":[0.5]}]}', 2) is None  # an escaped key
    assert extract(body, 1) is None  # the v1 layout finds nothing in a v2 body
    with pytest.raises(ValueError, match="layout"):
        extract(body, 3)
    with pytest.raises(TypeError):
        extract("{}", 2)


def test_decoding_a_placeholder_outside_one_pass_is_an_error() -> None:
    # An index is only meaningful inside decode_body; a number where a vector belongs in any
    # other decode is refused, not mistaken for an index.
    with pytest.raises(msgspec.ValidationError, match="embedding"):
        msgspec.json.decode(
            b'{"_id":"t","status":"ready","data":[{"embedding":0}]}', type=EmbeddingTask
        )


def test_one_pass_takes_vectors_only_where_the_model_reads_them() -> None:
    # Arrays under the same keys elsewhere (unknown fields, other levels) stay as they are.
    body = (
        b'{"data":[{"embedding":[1],"x":{"embedding":[2]},"float":[3]}],'
        b'"metadata":{"embedding":[4],"data":[{"embedding":[5]}]},"embedding":[6]}'
    )
    stripped, vectors = extract(body, 2)
    assert stripped == body.replace(b'"embedding":[1]', b'"embedding":0', 1)
    assert vectors == [struct.pack("=f", 1.0)]
    v1 = (
        b'{"float":[1],"video_embedding":{"float":[2],'
        b'"segments":[{"float":[3],"x":{"float":[4]}}]}}'
    )
    stripped, vectors = extract(v1, 1)
    assert stripped == v1.replace(b'"float":[3]', b'"float":0')
    assert vectors == [struct.pack("=f", 3.0)]


@pytest.mark.parametrize(
    "body",
    [
        # An escaped spelling of a vector key is the same key to msgspec: a number there must
        # stay an error, never be read as an index of another vector.
        b'{"_id":"t","status":"ready","data":[{"embedding":[1,2]},{"embe\\u0064ding":0}]}',
        b'{"_id":"t","status":"ready","data":[{"embedding":[1,2]},{"embedding":0}]}',
        b'{"_id":"t","status":"ready","d\\u0061ta":[{"embedding":0}],"data":[{"embedding":[1]}]}',
    ],
)
def test_a_number_where_a_vector_belongs_stays_an_error(body: bytes) -> None:
    assert isinstance(plain_outcome(EmbeddingTask, body), type)
    assert_same_task(EmbeddingTask, body)


def test_a_one_pass_decode_error_reports_the_original_bodys_offsets() -> None:
    body = b'{"_id":"t","status":"ready","data":[{"embedding":[' + b"0.5," * 50 + b'1]}],"x":}'
    assert extract(body, 2) is not None
    with pytest.raises(msgspec.DecodeError) as plain:
        msgspec.json.Decoder(EmbeddingTask).decode(body)
    with pytest.raises(msgspec.DecodeError) as one_pass:
        _vector.decode_body(decoder_for(EmbeddingTask), EmbeddingTask, body)
    assert str(one_pass.value) == str(plain.value)
    assert "byte" in str(plain.value)


def test_one_pass_decodes_in_many_threads_keep_their_own_vectors() -> None:
    # decode_body hands the vectors to __post_init__ through a thread-local: bodies decoded at
    # the same time in other threads (a user's thread pool) must never see each other's.
    import threading

    def body(seed: int) -> bytes:
        items = [{"embedding": [seed + i / 8, -seed - i / 16] * 40} for i in range(12)]
        return json.dumps({"_id": str(seed), "status": "ready", "data": items}).encode()

    bodies = {seed: body(seed) for seed in range(8)}
    expected = {seed: plain_outcome(EmbeddingTask, b) for seed, b in bodies.items()}
    failures: list[int] = []
    start = threading.Barrier(len(bodies))

    def work(seed: int) -> None:
        start.wait()
        for _ in range(60):
            if (
                _vector.decode_body(decoder_for(EmbeddingTask), EmbeddingTask, bodies[seed])
                != (expected[seed])
            ):
                failures.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in bodies]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not failures
    assert not any(t.is_alive() for t in threads)
