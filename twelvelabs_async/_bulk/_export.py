"""Export a results file's embeddings: one row per segment, ready for a vector store.

Rows carry ``custom_id``, ``task_id``, ``segment`` (its index within the task), ``option``
(``visual``, ``audio``, ...), ``scope`` (``clip``, ``asset``, ...), ``start``, ``end`` and the
``vector``. Written to Parquet when ``pyarrow`` is installed, else to ``PREFIX.npy`` (a float32
matrix, one row per segment) with ``PREFIX.jsonl`` (the other columns, line i for row i).
The results file is read line by line: memory stays bounded by one task and one batch.
"""

from __future__ import annotations

import array
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["ExportSummary", "export_results", "segment_rows"]

_BATCH = 4096


class _V2Segment(msgspec.Struct):
    embedding: list[float] | None = None
    embedding_option: str | None = None
    embedding_scope: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None


class _V2Task(msgspec.Struct):
    data: list[_V2Segment] | None = None


class _V1Segment(msgspec.Struct):
    vector: list[float] | None = msgspec.field(default=None, name="float")
    embedding_option: str | None = None
    embedding_scope: str | None = None
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None


class _V1Embedding(msgspec.Struct):
    segments: list[_V1Segment] | None = None


class _V1Task(msgspec.Struct):
    video_embedding: _V1Embedding | None = None


class _Line(msgspec.Struct):
    kind: str | None = None
    status: str | None = None
    custom_id: str | None = None
    task_id: str | None = None
    task: msgspec.Raw = msgspec.Raw(b"null")


_decode_line = msgspec.json.Decoder(_Line).decode
_decode_v2 = msgspec.json.Decoder(_V2Task).decode
_decode_v1 = msgspec.json.Decoder(_V1Task).decode


@dataclass(frozen=True, slots=True)
class Segment:
    """One exported row."""

    custom_id: str | None
    task_id: str | None
    segment: int
    option: str | None
    scope: str | None
    start: float | None
    end: float | None
    vector: list[float]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_results` wrote."""

    files: tuple[Path, ...]
    rows: int
    tasks: int
    dimension: int | None
    format: str


def segment_rows(results: str | os.PathLike[str]) -> Iterator[Segment]:
    """Every embedding segment of the ``ready`` embed tasks in a results file, in file order.

    When a ``custom_id`` has several lines (a rerun re-watched it), each is read: keep one
    line per item in the file you export.
    """
    with open(results, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = _decode_line(line)
            except msgspec.DecodeError as exc:
                raise ValueError(f"{os.fspath(results)}, line {number}: {exc}") from None
            if record.status != "ready" or bytes(record.task) == b"null":
                continue
            if record.kind == "embed_v2":
                task = _decode_v2(record.task)
                for index, seg in enumerate(task.data or ()):
                    if seg.embedding:
                        yield Segment(
                            record.custom_id,
                            record.task_id,
                            index,
                            seg.embedding_option,
                            seg.embedding_scope,
                            seg.start_sec,
                            seg.end_sec,
                            seg.embedding,
                        )
            elif record.kind == "embed_v1":
                v1 = _decode_v1(record.task)
                segments = v1.video_embedding.segments if v1.video_embedding else None
                for index, one in enumerate(segments or ()):
                    if one.vector:
                        yield Segment(
                            record.custom_id,
                            record.task_id,
                            index,
                            one.embedding_option,
                            one.embedding_scope,
                            one.start_offset_sec,
                            one.end_offset_sec,
                            one.vector,
                        )


def export_results(
    results: str | os.PathLike[str],
    prefix: str | os.PathLike[str],
    *,
    format: str = "auto",
) -> ExportSummary:
    """Write the embeddings of a results file as ``PREFIX.parquet`` (``format="parquet"``,
    or ``"auto"`` with pyarrow installed) or ``PREFIX.npy`` + ``PREFIX.jsonl`` (``"npy"``)."""
    if format not in ("auto", "parquet", "npy"):
        raise ValueError(f"format must be auto, parquet or npy, got {format!r}")
    if format == "auto":
        try:
            importlib.import_module("pyarrow")
        except ImportError:
            format = "npy"
        else:
            format = "parquet"
    base = Path(prefix)
    if base.parent != Path():
        base.parent.mkdir(parents=True, exist_ok=True)
    if format == "parquet":
        return _to_parquet(results, base.with_name(base.name + ".parquet"))
    matrix, index = base.with_name(base.name + ".npy"), base.with_name(base.name + ".jsonl")
    return _to_npy(results, matrix, index)


def _to_parquet(results: str | os.PathLike[str], target: Path) -> ExportSummary:
    try:  # an optional extra: imported by name, so type checking does not need it
        pa: Any = importlib.import_module("pyarrow")
        pq: Any = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise RuntimeError(
            "Parquet export needs pyarrow: pip install 'twelvelabs-async[export]'"
        ) from None
    schema = pa.schema(
        [
            ("custom_id", pa.string()),
            ("task_id", pa.string()),
            ("segment", pa.int32()),
            ("option", pa.string()),
            ("scope", pa.string()),
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("vector", pa.list_(pa.float32())),
        ]
    )
    rows = 0
    tasks: set[str | None] = set()
    dimension: int | None = None
    batch: list[Segment] = []

    def flush(writer: Any) -> None:
        columns = {
            "custom_id": [s.custom_id for s in batch],
            "task_id": [s.task_id for s in batch],
            "segment": [s.segment for s in batch],
            "option": [s.option for s in batch],
            "scope": [s.scope for s in batch],
            "start": [s.start for s in batch],
            "end": [s.end for s in batch],
            "vector": [s.vector for s in batch],
        }
        writer.write_table(pa.Table.from_pydict(columns, schema=schema))
        batch.clear()

    with pq.ParquetWriter(target, schema) as writer:
        for segment in segment_rows(results):
            batch.append(segment)
            rows += 1
            tasks.add(segment.task_id)
            dimension = dimension or len(segment.vector)
            if len(batch) >= _BATCH:
                flush(writer)
        if batch:
            flush(writer)
    return ExportSummary((target,), rows, len(tasks), dimension, "parquet")


def _to_npy(results: str | os.PathLike[str], matrix: Path, index: Path) -> ExportSummary:
    import tempfile  # here: it costs every import of the package otherwise

    rows = 0
    tasks: set[str | None] = set()
    dimension: int | None = None
    encode = msgspec.json.Encoder().encode
    # The vectors go to a scratch file first: the .npy header needs the row count up front.
    with (
        tempfile.TemporaryFile(dir=matrix.parent) as scratch,
        open(index, "wb") as lines,
    ):
        for segment in segment_rows(results):
            if dimension is None:
                dimension = len(segment.vector)
            elif len(segment.vector) != dimension:
                raise ValueError(
                    f"task {segment.task_id} has {len(segment.vector)}-long vectors, earlier "
                    f"ones {dimension}: a .npy matrix needs one length (export to Parquet, "
                    "or export each model's results separately)"
                )
            values = array.array("f", segment.vector)
            if sys.byteorder != "little":  # pragma: no cover - .npy says '<f4'
                values.byteswap()
            scratch.write(values.tobytes())
            lines.write(
                encode(
                    {
                        "row": rows,
                        "custom_id": segment.custom_id,
                        "task_id": segment.task_id,
                        "segment": segment.segment,
                        "option": segment.option,
                        "scope": segment.scope,
                        "start": segment.start,
                        "end": segment.end,
                    }
                )
                + b"\n"
            )
            rows += 1
            tasks.add(segment.task_id)
        scratch.seek(0)
        with open(matrix, "wb") as out:
            out.write(_npy_header((rows, dimension or 0)))
            while chunk := scratch.read(1 << 20):
                out.write(chunk)
    return ExportSummary((matrix, index), rows, len(tasks), dimension, "npy")


def _npy_header(shape: tuple[int, int]) -> bytes:
    """A version 1.0 ``.npy`` header for a C-order float32 matrix (numpy not needed)."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape[0]}, {shape[1]}), }}"
    size = len(text) + 1  # the closing newline
    pad = (64 - (10 + size) % 64) % 64
    header = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
