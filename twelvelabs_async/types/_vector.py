"""``Float32Vector``: an embedding kept as 4-byte floats, encoded by msgspec as a JSON array.

A vector decoded to ``list[float]`` costs 32 bytes per value (a Python float plus its list
slot); the API's values are float32 model outputs, so 4 bytes keep all they carry. The type is
an ``array.array('f')`` subclass: ``len()``, indexing, iteration, ``list()``, ``tolist()`` and
the buffer protocol (format ``'f'``, so ``numpy.frombuffer(v, numpy.float32)`` and
``memoryview(v)`` read it without a copy) are the array's own C code.

How the models decode a vector. With the optional C accelerator (``twelvelabs_async._speedups``,
built at install when a C compiler is present), the field is annotated ``msgspec.Raw`` and the
struct's ``__post_init__`` turns it into float32 without making a Python float. The library's
own decode of a task body (:func:`decode_body`) goes further: the accelerator walks the body
once, parses every vector where the task's layout puts it, and hands msgspec the body with each
array replaced by its index, which ``__post_init__`` looks up; a body it is unsure of is decoded
as it is. Either way decoding a ready body is faster than decoding it to ``list[float]``.
Without the accelerator (no compiler, or ``TWELVELABS_ASYNC_NO_EXTENSIONS=1``) the field is
annotated ``list[float]``, and ``__post_init__`` packs msgspec's transient floats at C speed
with ``struct``. All paths give the same float32 values (each number's correctly rounded
double, rounded to float32) and decode JSON and MessagePack bodies alike; only with the
accelerator does ``msgspec.convert`` from Python objects refuse the models (a ``Raw`` field
takes bytes only), so build them by hand instead: ``EmbeddingData(embedding=[...])``.

How ``msgspec.json.encode(task)`` still writes a JSON array without an ``enc_hook``: msgspec
(>= 0.21) recognises an enum by its metaclass being a subclass of ``EnumMeta`` and encodes
``obj._value_`` in its place. :class:`Float32Vector`'s metaclass is such a subclass with every
piece of enum machinery switched back to plain ``type`` behaviour (the class is not an
``Enum``: ``isinstance(v, enum.Enum)`` is ``False``), and ``_value_`` is a property returning
``self.tolist()``. The list of floats exists only while it is being encoded. The tests pin
this behaviour for JSON, MessagePack and ``msgspec.to_builtins``.
"""

from __future__ import annotations

import array
import enum
import os
import struct
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, SupportsFloat, SupportsIndex, TypeVar, cast

import msgspec

__all__ = [
    "ACCELERATED",
    "Float32Vector",
    "OptionalVectorField",
    "VectorField",
    "as_float32_vector",
    "as_optional_float32_vector",
    "decode_body",
    "register_vector_layout",
    "stack_vectors",
]

T = TypeVar("T")


def _load_speedups() -> Any:
    if os.environ.get("TWELVELABS_ASYNC_NO_EXTENSIONS"):
        return None
    try:
        from .. import _speedups
    except ImportError:  # built without a C compiler: the pure-Python path
        return None
    return _speedups


_speedups = _load_speedups()
_parse_json_array: Callable[[msgspec.Raw], bytes] | None = (
    None if _speedups is None else _speedups.parse_float32_array
)
_extract_vectors: Callable[[bytes, int], tuple[bytes, list[bytes]] | None] | None = (
    None if _speedups is None else _speedups.extract_vectors
)

ACCELERATED = _parse_json_array is not None
"""Whether vectors are parsed by the C accelerator (the values are the same either way)."""

if TYPE_CHECKING:
    import numpy

    # Type checkers see a plain float array; the metaclass below is a runtime detail.
    _Base = array.array[float]
    _Meta = type
else:
    _Base = array.array

    class _Meta(enum.EnumMeta):
        """Only msgspec looks at this metaclass ("is it an enum? then encode ``_value_``").
        Everything ``EnumMeta`` adds is undone, so the class behaves as a plain class."""

        def __new__(
            mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kw: Any
        ) -> type:
            return type.__new__(mcls, name, bases, dict(namespace), **kw)

        def __init__(cls, *args: Any, **kw: Any) -> None:
            type.__init__(cls, *args, **kw)

        @classmethod
        def __prepare__(mcls, name: str, bases: tuple[type, ...], **kw: Any) -> dict[str, Any]:
            return {}

        __call__ = type.__call__
        __repr__ = type.__repr__
        __dir__ = type.__dir__
        __setattr__ = type.__setattr__
        __delattr__ = type.__delattr__

        def __getattr__(cls, name: str) -> Any:
            # EnumMeta (3.10, 3.11) looks up members here; a plain class just has no such name.
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")

        def __bool__(cls) -> bool:
            return True

        @property
        def _value2member_map_(cls) -> Any:
            # msgspec reads this when a user's own Struct annotates a field with the class.
            raise TypeError(
                "msgspec cannot decode into Float32Vector: annotate the field as list[float] "
                "and convert it with Float32Vector(values) (the library's models do this "
                "in __post_init__)"
            )


_new_array = array.array.__new__
_packers: dict[int, Callable[..., bytes]] = {}


def _packer(n: int) -> Callable[..., bytes]:
    pack = _packers.get(n)
    if pack is None:
        if len(_packers) >= 64:  # a few dimensions ever occur; never grow without bound
            _packers.clear()
        # '=' (standard size, native order) packs through PyFloat_Pack4, which raises
        # OverflowError for a finite value beyond float32 range (the native '@' mode would
        # silently give inf). Native order keeps the bytes identical to array('f').
        pack = _packers[n] = struct.Struct(f"={n}f").pack
    return pack


class Float32Vector(_Base, metaclass=_Meta):
    """An embedding vector stored as float32 (4 bytes per value).

    Behaves as a sequence of ``float``: ``len(v)``, ``v[i]``, ``for x in v``,
    ``list(v)``, ``v.tolist()``. It is an ``array.array`` of typecode ``'f'``, so
    ``memoryview(v)`` and ``numpy.frombuffer(v, dtype=numpy.float32)`` read its memory
    directly, and ``msgspec.json.encode`` writes it as a JSON array of numbers.

    ``Float32Vector(values)`` takes any iterable of real numbers; a value outside float32's
    range (beyond ~3.4e38 in magnitude) raises ``ValueError``; a value below float32's
    smallest subnormal rounds to (signed) zero. Slicing, ``+`` and ``*`` return a plain
    ``array.array('f')``.
    """

    __slots__ = ()

    def __new__(cls, values: Iterable[SupportsFloat | SupportsIndex] = ()) -> Float32Vector:
        if isinstance(values, array.array) and values.typecode == "f":
            return _wrap(cls, values)
        if not isinstance(values, (list, tuple)):
            values = list(values)
        return _pack_into_vector(cls, values)

    @property
    def _value_(self) -> list[float]:
        """What msgspec encodes in place of the vector (see the module docstring)."""
        return self.tolist()

    def __repr__(self) -> str:
        return f"Float32Vector({self.tolist()!r})"

    def __copy__(self) -> Float32Vector:
        return _wrap(type(self), self)

    def __deepcopy__(self, memo: Any) -> Float32Vector:
        return self.__copy__()


if TYPE_CHECKING:
    VectorField = Float32Vector
    OptionalVectorField = Float32Vector | None
elif ACCELERATED:
    # The annotation of a vector field in the wire structs: msgspec checks the JSON and keeps
    # the array's text, which the struct's __post_init__ parses with as_float32_vector(); type
    # checkers see the field's real type. (A Raw cannot sit in a union, so an optional vector
    # is also a Raw, with None as its default, and JSON null arrives as Raw(b"null").)
    VectorField = msgspec.Raw
    OptionalVectorField = msgspec.Raw
else:
    # Without the accelerator msgspec decodes the array to a transient list[float], which
    # __post_init__ packs: re-parsing a Raw's text in Python would be slower.
    VectorField = list[float]
    OptionalVectorField = list[float] | None


def _wrap(cls: type[Float32Vector], source: array.array[float]) -> Float32Vector:
    # array.array.__new__ straight away (no metaclass __call__, no Python __new__): from an
    # array of the same typecode it allocates the exact size and copies with one memcpy
    # (array('f', bytes) would grow its buffer with ~6% spare room).
    return cast(Float32Vector, _new_array(cls, "f", source))


def _pack_into_vector(
    cls: type[Float32Vector], values: list[Any] | tuple[Any, ...]
) -> Float32Vector:
    try:
        data = _packer(len(values))(*values)
    except OverflowError:
        raise ValueError("number out of range (beyond float32 range, |x| > 3.4028235e38)") from None
    except struct.error as exc:  # a non-number
        raise TypeError(f"a vector holds numbers only ({exc})") from None
    return _from_bytes(cls, data)


def _from_bytes(cls: type[Float32Vector], data: bytes) -> Float32Vector:
    staging = array.array("f")
    staging.frombytes(data)
    return _wrap(cls, staging)


_json_floats = msgspec.json.Decoder(list[float])
_msgpack_floats = msgspec.msgpack.Decoder(list[float])
_JSON_START = frozenset(b'[{"ntf-0123456789 \t\r\n')


def _decode_raw(raw: msgspec.Raw, field: str) -> list[float] | None:
    """The pure-Python reading of a vector's ``Raw``: JSON (or MessagePack) to ``list[float]``,
    or ``None`` for null; a ``ValueError`` (msgspec adds the field's path) for anything else."""
    text = memoryview(raw)
    is_json = len(text) > 0 and text[0] in _JSON_START
    try:
        if is_json:
            if len(text) <= 16 and bytes(text).strip() == b"null":
                return None
            return _json_floats.decode(text)
        if bytes(text) == b"\xc0":  # MessagePack nil
            return None
        return _msgpack_floats.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{field}: {exc}") from None


_layouts: dict[type, int] = {}
_extracted = threading.local()  # the vectors of the body being decoded (see decode_body)


def register_vector_layout(tp: type, layout: int) -> None:
    """Tell :func:`decode_body` where ``tp``'s vectors sit: ``1`` for an Embed v1 task's
    ``video_embedding.segments[].float``, ``2`` for an Embed v2 task's ``data[].embedding`` and
    ``data[].embedding_uncertainty``."""
    _layouts[tp] = layout


def decode_body(decoder: msgspec.json.Decoder[T], tp: type, body: bytes) -> T:
    """``decoder.decode(body)``; for a type with a registered layout, the accelerator first
    parses every vector in one pass and msgspec decodes the body with each vector array
    replaced by its index (the models' ``__post_init__`` look the vectors up). A body the
    accelerator is not sure of is decoded as it is."""
    layout = _layouts.get(tp)
    if layout is not None and _extract_vectors is not None:
        extracted = _extract_vectors(body, layout)
        if extracted is not None:
            stripped, _extracted.vectors = extracted
            try:
                return decoder.decode(stripped)
            except msgspec.DecodeError:
                pass  # decoded again below, so that the error's byte offsets are the body's
            finally:
                _extracted.vectors = None
    return decoder.decode(body)


def _vector_from_raw(raw: msgspec.Raw, field: str, optional: bool) -> Float32Vector | None:
    text = memoryview(raw)
    first = text[:1].tobytes()
    if first.isdigit():
        # An index that extract_vectors put in place of the array (see decode_body); outside
        # such a decode, a number where a vector belongs is an error below.
        vectors: list[bytes] | None = getattr(_extracted, "vectors", None)
        if vectors is not None:
            try:
                return _from_bytes(Float32Vector, vectors[int(text.tobytes())])
            except (IndexError, ValueError):  # not an index of this body: never guess
                raise ValueError(f"{field}: expected an array of numbers") from None
    if _parse_json_array is not None:
        try:
            return _from_bytes(Float32Vector, _parse_json_array(raw))
        except ValueError as exc:
            if first == b"[":
                raise ValueError(f"{field}: {exc}") from None
            # null, or not JSON at all (a MessagePack body): the general path below
    values = _decode_raw(raw, field)
    if values is None:
        if optional:
            return None
        raise ValueError(f"{field}: expected an array of numbers, got null")
    try:
        return _pack_into_vector(Float32Vector, values)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def as_float32_vector(values: Any, field: str = "vector") -> Float32Vector:
    """``values`` as a :class:`Float32Vector` (returned as is when it already is one).

    This is the wire structs' ``__post_init__`` step. From a decoded body it receives the
    array's text (``msgspec.Raw``) and parses it to float32; from a model built by hand, any
    sequence or iterable of numbers. ``field`` names the vector in error messages.
    """
    if type(values) is Float32Vector:
        return values
    if type(values) is msgspec.Raw:
        return cast(Float32Vector, _vector_from_raw(values, field, optional=False))
    if type(values) is list:
        return _pack_into_vector(Float32Vector, values)
    return Float32Vector(values)


def as_optional_float32_vector(values: Any, field: str = "vector") -> Float32Vector | None:
    """:func:`as_float32_vector`, except that ``None`` (or JSON null) stays ``None``."""
    if values is None:
        return None
    if type(values) is msgspec.Raw:
        return _vector_from_raw(values, field, optional=True)
    return as_float32_vector(values, field)


def stack_vectors(vectors: list[Float32Vector]) -> numpy.ndarray[Any, Any]:
    """``vectors`` as one new, writable 2-D ``numpy.float32`` array (a copy: the rows of a 2-D
    array are contiguous, the vectors are separate blocks)."""
    try:
        import numpy  # optional: imported on use
    except ImportError:
        raise ImportError(
            "embeddings_array() needs numpy (pip install numpy); without it, read each "
            "vector with memoryview(vector) or list(vector)"
        ) from None
    if not vectors:
        return numpy.empty((0, 0), dtype=numpy.float32)
    width = len(vectors[0])
    if any(len(v) != width for v in vectors):
        raise ValueError("the vectors differ in length; select one embedding_option")
    out = numpy.empty((len(vectors), width), dtype=numpy.float32)
    for row, vector in zip(out, vectors, strict=True):
        row[:] = numpy.frombuffer(vector, dtype=numpy.float32)
    return out
