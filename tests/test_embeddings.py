"""Compact embeddings (issue 12): vectors are float32 containers end to end.

Every vector a task carries (Embed v2 ``EmbeddingData.embedding`` and
``embedding_uncertainty``, Embed v1 ``VideoSegment.float_``) is a :class:`Float32Vector`:
``len()``, indexing to ``float``, iteration, ``list()``, the buffer protocol with format
``'f'``, values equal to the API's at float32 precision, and ``msgspec`` still encodes a task
(plain ``msgspec.json.encode``, no ``enc_hook``) with its vectors as JSON arrays of numbers.
"""

from __future__ import annotations

import array
import copy
import ctypes
import enum
import gc
import json
import math
import os
import pickle
import shutil
import sys
import sysconfig
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from twelvelabs_async import (
    AsyncTwelveLabs,
    EmbeddingTask,
    EmbedV1Task,
    Float32Vector,
    ResponseDecodeError,
)
from twelvelabs_async._cli._common import outcome_record
from twelvelabs_async._decode import decoder_for
from twelvelabs_async.testing import FakeTwelveLabs
from twelvelabs_async.types import EmbeddingData, VideoSegment
from twelvelabs_async.types._vector import ACCELERATED

V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
V1_TASK = "GET /v1.3/embed/tasks/{task_id}"
FLT_MAX = 3.4028234663852886e38


def f32(x: float) -> float:
    """``x`` rounded to float32 by the C compiler's cast (an oracle independent of the
    ``struct`` packing the library uses)."""
    return ctypes.c_float(x).value


def served_v2_vectors(fake: FakeTwelveLabs) -> list[list[float]]:
    """The numbers the fake writes on the wire for a ready Embed v2 task, read as doubles."""
    return [item["embedding"] for item in json.loads(fake.payloads.v2_data())]


def assert_numbers(values: Any) -> None:
    assert isinstance(values, list)
    assert all(type(x) in (int, float) and math.isfinite(x) for x in values)


def bit_equal(a: float, b: float) -> bool:
    """Equal including the sign of zero."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# --- the container --------------------------------------------------------------------------


def test_vector_behaves_as_a_float_sequence_with_a_float32_buffer() -> None:
    v = Float32Vector([0.1, -0.0, 3, 1e-40])
    assert isinstance(v, array.array)
    assert v.typecode == "f"
    assert v.itemsize == 4
    assert len(v) == 4
    assert type(v[0]) is float
    assert v[0] == f32(0.1) != 0.1  # float32 precision, not double
    assert v[-1] == f32(1e-40) > 0  # a subnormal survives
    assert bit_equal(v[1], -0.0)
    assert list(v) == [f32(0.1), -0.0, 3.0, f32(1e-40)]
    assert [x for x in v] == v.tolist() == list(v)
    view = memoryview(v)
    assert view.format == "f"
    assert view.itemsize == 4
    assert view.nbytes == 16
    assert not view.readonly
    assert view.tolist() == list(v)
    view.release()
    assert Float32Vector() == Float32Vector([])
    assert len(Float32Vector()) == 0
    # The metaclass msgspec reads (see _vector.py) behaves as a plain class's would.
    assert not isinstance(v, enum.Enum)
    assert repr(Float32Vector) == "<class 'twelvelabs_async.Float32Vector'>"
    assert not hasattr(Float32Vector, "no_such_attribute")
    assert "tolist" in dir(Float32Vector)
    assert Float32Vector


def test_vector_construction_copy_pickle_and_repr() -> None:
    v = Float32Vector(x / 8 for x in range(5))
    assert list(v) == [0.0, 0.125, 0.25, 0.375, 0.5]
    assert Float32Vector(v) == v
    assert Float32Vector(v) is not v
    assert Float32Vector(array.array("d", [1.5, 2.5])) == Float32Vector([1.5, 2.5])
    assert Float32Vector((1, 2)) == Float32Vector([1.0, 2.0])
    for other in (copy.copy(v), copy.deepcopy(v), pickle.loads(pickle.dumps(v))):
        assert type(other) is Float32Vector
        assert other == v
        assert other is not v
    assert repr(v) == "Float32Vector([0.0, 0.125, 0.25, 0.375, 0.5])"
    assert eval(repr(v), {"Float32Vector": Float32Vector}) == v
    assert type(v[1:3]) is array.array  # documented: slices are plain float32 arrays
    with pytest.raises(ValueError, match="float32 range"):
        Float32Vector([1.0, 1e39])
    with pytest.raises(ValueError, match="float32 range"):
        Float32Vector([-3.5e38])
    with pytest.raises(TypeError, match="numbers only"):
        Float32Vector(["0.5"])  # type: ignore[list-item]
    assert Float32Vector([FLT_MAX, -FLT_MAX]).tolist() == [FLT_MAX, -FLT_MAX]
    assert Float32Vector([float("inf")])[0] == math.inf  # an explicit inf is kept as is


def test_models_built_by_hand_hold_vectors_too() -> None:
    data = EmbeddingData(embedding=[0.5, 0.25], embedding_uncertainty=[0.1])  # type: ignore[arg-type]
    assert type(data.embedding) is Float32Vector
    assert type(data.embedding_uncertainty) is Float32Vector
    same = Float32Vector([1.0])
    assert EmbeddingData(embedding=same).embedding is same  # no copy of a vector
    assert type(VideoSegment().float_) is Float32Vector
    assert VideoSegment(float_=[2.0]).float_ == Float32Vector([2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float32 range"):
        EmbeddingData(embedding=[1e300])  # type: ignore[arg-type]


def test_users_own_structs_get_a_clear_error_for_the_annotation() -> None:
    class Mine(msgspec.Struct):
        vector: Float32Vector

    with pytest.raises(TypeError, match=r"annotate the field as list\[float\]"):
        msgspec.json.Decoder(Mine)


# --- encoding -------------------------------------------------------------------------------


def test_plain_msgspec_encoders_write_json_arrays_of_numbers() -> None:
    v = Float32Vector([0.1, -0.0, 2, 1e-40])
    assert json.loads(msgspec.json.encode(v)) == list(v)
    assert msgspec.json.encode(Float32Vector()) == b"[]"
    assert msgspec.json.Encoder(order="sorted").encode({"v": v}) == msgspec.json.encode({"v": v})
    assert msgspec.to_builtins(v) == list(v)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(v)) == list(v)
    # Decoded back as float32, every value is bit-identical.
    back = msgspec.json.decode(msgspec.json.encode(v), type=list[float])
    assert all(bit_equal(a, b) for a, b in zip(Float32Vector(back), v, strict=True))


async def test_round_trip_fake_server_retrieve_v2(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", status="ready")
    task = await client.embed.v2.tasks.retrieve(task_id)
    assert task.data is not None
    served = served_v2_vectors(fake)
    assert len(task.data) == len(served) == len(fake.payloads.vectors)
    for item, wire, kept in zip(task.data, served, fake.payloads.vectors, strict=True):
        vector = item.embedding
        assert type(vector) is Float32Vector
        assert len(vector) == len(wire) == 1024
        assert vector == kept  # the fake keeps what a client decodes
        assert list(vector) == [f32(x) for x in wire]  # the served floats, at float32
        # Relative error within float32's half ulp (2**-24).
        assert all(abs(a - x) <= abs(x) * 2**-24 for a, x in zip(vector, wire, strict=True))
    # The whole task encodes with plain msgspec: vectors as arrays of numbers, decodable
    # back into an equal task.
    body = msgspec.json.encode(task)
    plain = json.loads(body)
    for item, wire in zip(plain["data"], served, strict=True):
        assert_numbers(item["embedding"])
        assert [f32(x) for x in item["embedding"]] == [f32(x) for x in wire]
    assert msgspec.json.decode(body, type=EmbeddingTask) == task


async def test_round_trip_fake_server_retrieve_v1(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v1", status="ready")
    task = await client.embed.v1.tasks.retrieve(task_id)
    assert task.video_embedding is not None
    assert task.video_embedding.segments
    segments = task.video_embedding.segments
    served = json.loads(fake.payloads.v1_segments())
    for segment, wire, kept in zip(segments, served, fake.payloads.vectors, strict=True):
        assert type(segment.float_) is Float32Vector
        assert segment.float_ == kept
        assert list(segment.float_) == [f32(x) for x in wire["float"]]
    plain = json.loads(msgspec.json.encode(task))
    for segment in plain["video_embedding"]["segments"]:
        assert_numbers(segment["float"])
    assert msgspec.json.decode(msgspec.json.encode(task), type=EmbedV1Task) == task


async def test_poller_and_wait_all_deliver_float32_and_cli_lines_hold_arrays(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    v2 = fake.add_task("embed_v2", finish_after_polls=1)
    v1 = fake.add_task("embed_v1", finish_after_polls=1)
    with anyio.fail_after(10):
        results = await client.wait_all(embed_v2=[v2], embed_v1=[v1], poll_interval=0.01)
    task2 = results[v2].task
    task1 = results[v1].task
    assert results[v2].status == results[v1].status == "ready"
    assert all(type(d.embedding) is Float32Vector for d in task2.data)
    assert all(type(s.float_) is Float32Vector for s in task1.video_embedding.segments)
    async with client.poller(poll_interval=0.01) as poller:
        poller.add(client.embed.v2.tasks, [v2])
        with anyio.fail_after(10):
            outcomes = [o async for o in poller.as_completed()]
    assert all(type(d.embedding) is Float32Vector for d in outcomes[0].task.data)
    # The command line writes results with outcome_record(): plain msgspec, arrays of numbers.
    served = served_v2_vectors(fake)
    line = json.loads(outcome_record(results[v2]))
    assert line["status"] == "ready"
    for item, wire in zip(line["task"]["data"], served, strict=True):
        assert_numbers(item["embedding"])
        assert [f32(x) for x in item["embedding"]] == [f32(x) for x in wire]
    segments = json.loads(outcome_record(results[v1]))["task"]["video_embedding"]["segments"]
    assert all(s["float"] and assert_numbers(s["float"]) is None for s in segments)


# --- numpy ----------------------------------------------------------------------------------


def test_numpy_reads_the_vector_without_a_copy() -> None:
    np = pytest.importorskip("numpy")
    v = Float32Vector([0.5, -1.5, 2.0])
    view = np.frombuffer(v, dtype=np.float32)
    assert view.tolist() == [0.5, -1.5, 2.0]
    v[1] = 7.25  # written through the array: the numpy view sees it, so it is not a copy
    assert view[1] == 7.25
    assert np.shares_memory(view, np.frombuffer(v, dtype=np.float32))
    assert np.asarray(memoryview(v)).dtype == np.float32


async def test_embeddings_array_is_a_2d_float32_matrix(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    np = pytest.importorskip("numpy")
    task = await client.embed.v2.tasks.retrieve(fake.add_task("embed_v2", status="ready"))
    matrix = task.embeddings_array()
    assert matrix.dtype == np.float32
    assert matrix.shape == (len(fake.payloads.vectors), 1024)
    assert matrix.flags.writeable
    for row, vector in zip(matrix, fake.payloads.vectors, strict=True):
        assert row.tolist() == list(vector)
    visual = task.embeddings_array(option="visual")
    assert visual.shape == (sum(d.embedding_option == "visual" for d in task.data or ()), 1024)
    assert task.embeddings_array(option="no-such-option").shape == (0, 0)
    v1 = await client.embed.v1.tasks.retrieve(fake.add_task("embed_v1", status="ready"))
    assert v1.embeddings_array().shape == (len(fake.payloads.vectors), 1024)
    uneven = EmbeddingTask(
        id="x", status="ready", data=[EmbeddingData(embedding=[1.0]), EmbeddingData(embedding=[])]
    )
    with pytest.raises(ValueError, match="differ in length"):
        uneven.embeddings_array()


def test_embeddings_array_without_numpy_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy -> ImportError
    task = EmbeddingTask(id="x", status="ready", data=[EmbeddingData(embedding=[1.0])])
    with pytest.raises(ImportError, match="needs numpy"):
        task.embeddings_array()
    assert list(task.data[0].embedding) == [1.0]  # everything else works without numpy


# --- decoding: any length, any spelling of a number ------------------------------------------


@st.composite
def number_texts(draw: Any) -> str:
    """One JSON number in one of the spellings a server may use. (An integer is read as an
    integer: ``-0`` is 0, while ``-0.0`` keeps its sign.)"""
    kind = draw(st.sampled_from(["repr", "int", "exp", "EXP", "special"]))
    if kind == "int":
        return str(draw(st.integers(-(10**20), 10**20)))
    if kind == "special":
        return draw(
            st.sampled_from(
                [
                    "0",
                    "-0",
                    "-0.0",
                    "0.0",
                    "1E+2",
                    "1e-3",
                    "1.4e-45",  # the smallest float32 subnormal
                    "-1.4e-45",
                    "1e-46",  # below it: rounds to zero
                    "-1e-46",
                    "1e-40",
                    "1.17549435e-38",  # the smallest normal
                    "3.4028234e38",
                    "3.4028235e+38",  # rounds down to FLT_MAX
                    "-3.40282346638528859e38",
                    "5e-324",
                    "1e-400",
                    "123456789012345678901234567890",
                ]
            )
        )
    value = draw(
        st.floats(
            min_value=-FLT_MAX,
            max_value=FLT_MAX,
            allow_nan=False,
            allow_infinity=False,
            allow_subnormal=True,
        )
    )
    if kind == "exp":
        return f"{value:e}"
    if kind == "EXP":
        return f"{value:.9E}"
    return repr(value)


@st.composite
def vector_texts(draw: Any) -> list[str]:
    size = draw(
        st.one_of(st.integers(0, 16), st.integers(0, 4096), st.sampled_from([256, 512, 1024, 4096]))
    )
    # A few distinct numbers, tiled: lengths up to 4096 without 4096 draws each.
    distinct = draw(st.lists(number_texts(), min_size=1, max_size=24))
    return [distinct[i % len(distinct)] for i in range(size)]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(texts=vector_texts(), uncertainty=st.booleans())
@example(texts=["1e39"], uncertainty=False)
@example(texts=["-1e39"], uncertainty=True)
@example(texts=["1"] * 4096, uncertainty=False)
def test_any_vector_decodes_to_float32_of_the_served_numbers(
    texts: list[str], uncertainty: bool
) -> None:
    array_text = "[" + ",".join(texts) + "]"
    item = '{"embedding":' + array_text
    if uncertainty:
        item += ',"embedding_uncertainty":' + array_text
    body = ('{"_id":"t","status":"ready","data":[' + item + "}]}").encode()
    expected = [f32(float(int(t) if t.lstrip("-").isdigit() else t)) for t in texts]
    decoder = decoder_for(EmbeddingTask)
    if any(math.isinf(x) for x in expected):
        # A finite number beyond float32 range is not silently made infinite.
        with pytest.raises(msgspec.ValidationError, match=r"float32 range.*\$\.data\[0\]"):
            decoder.decode(body)
        return
    task = decoder.decode(body)
    assert task.data is not None
    vectors = [task.data[0].embedding]
    if uncertainty:
        assert task.data[0].embedding_uncertainty is not None
        vectors.append(task.data[0].embedding_uncertainty)
    for vector in vectors:
        assert type(vector) is Float32Vector
        assert len(vector) == len(texts)
        assert all(bit_equal(a, b) for a, b in zip(vector, expected, strict=True))
        assert_numbers(json.loads(msgspec.json.encode(vector)))
    v1_body = ('{"_id":"t","video_embedding":{"segments":[{"float":' + array_text + "}]}}").encode()
    segment = decoder_for(EmbedV1Task).decode(v1_body).video_embedding.segments[0]  # type: ignore[union-attr,index]
    assert all(bit_equal(a, b) for a, b in zip(segment.float_, expected, strict=True))


@pytest.mark.parametrize(
    ("number", "match"),
    [("1e39", "float32 range"), ("-3.5e38", "float32 range"), ("1e999", "out of range")],
)
async def test_out_of_range_values_are_a_decode_error_end_to_end(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, number: str, match: str
) -> None:
    body = b'{"_id":"t","status":"ready","data":[{"embedding":[0.5,' + number.encode() + b"]}]}"
    fake.faults.push(V2_TASK, status=200, body=body)
    with pytest.raises(ResponseDecodeError, match=match) as info:
        await client.embed.v2.tasks.retrieve("t")
    assert info.value.status_code == 200


async def test_special_values_end_to_end(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    texts = ["0", "-0.0", "7", "1E+2", "1e-3", "2.5e-45", "1e-50", "-1e-50", "3.4028235e38"]
    body = (
        '{"_id":"t","video_embedding":{"segments":[{"float":[' + ",".join(texts) + "]}]}}"
    ).encode()
    fake.faults.push(V1_TASK, status=200, body=body)
    task = await client.embed.v1.tasks.retrieve("t")
    vector = task.video_embedding.segments[0].float_  # type: ignore[union-attr,index]
    expected = [0.0, -0.0, 7.0, 100.0, f32(1e-3), f32(2.5e-45), 0.0, -0.0, FLT_MAX]
    assert all(bit_equal(a, b) for a, b in zip(vector, expected, strict=True))


# --- memory ---------------------------------------------------------------------------------


def test_a_kept_vector_costs_its_float32_bytes_plus_a_small_fixed_overhead() -> None:
    dim, count = 1024, 200
    data = [
        {"embedding": [((i * 7 + j) % 1000) / 1000 - 0.5 for j in range(dim)]} for i in range(count)
    ]
    body = msgspec.json.encode({"_id": "t", "status": "ready", "data": data})
    del data
    decoder = decoder_for(EmbeddingTask)
    decoder.decode(body)  # warm-up: caches (the packer for this length) are not per vector
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        task = decoder.decode(body)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert task.data is not None
    assert len(task.data) == count
    per_item = kept / count
    # 4 bytes per value (no spare capacity) plus a fixed overhead under 256 bytes: the array
    # header (64), the EmbeddingData struct (~110) and its slot in the data list (8);
    # list[float] kept 32 bytes per value.
    assert 4 * dim <= per_item <= 4 * dim + 256, per_item


def test_cli_results_file_lines_hold_arrays(tmp_path: Path) -> None:
    """The results file the CLI appends to keeps vectors as JSON arrays of numbers."""
    from twelvelabs_async import Outcome
    from twelvelabs_async._cli._results import ResultsFile

    task = EmbeddingTask(
        id="t", status="ready", data=[EmbeddingData(embedding=Float32Vector([0.1, -2.0]))]
    )
    with ResultsFile(tmp_path / "r.jsonl", fresh=True) as results:
        results.append(outcome_record(Outcome("t", "embed_v2", "ready", task)))
    (line,) = (tmp_path / "r.jsonl").read_bytes().splitlines()
    vector = json.loads(line)["task"]["data"][0]["embedding"]
    assert_numbers(vector)
    assert [f32(x) for x in vector] == [f32(0.1), -2.0]


def test_the_accelerator_is_built_where_a_compiler_is() -> None:
    # setuptools compiles with $CC when it is set, else with the compiler Python was built with
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None or os.environ.get("TWELVELABS_ASYNC_NO_EXTENSIONS"):
        pytest.skip("no C compiler here (or the accelerator is switched off)")
    assert ACCELERATED
