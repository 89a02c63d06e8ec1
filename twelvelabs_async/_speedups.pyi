from typing_extensions import Buffer

def parse_float32_array(json_array: Buffer, /) -> bytes:
    """The numbers of a JSON array as native float32 bytes (each number's correctly rounded
    double, rounded to float32). ``ValueError`` for anything else, or for a value outside
    float32 range."""

def extract_vectors(body: Buffer, layout: int, /) -> tuple[bytes, list[bytes]] | None:
    """Every vector of an Embed v1 (``layout=1``) or v2 (``layout=2``) task body parsed in one
    pass: the body with each vector array replaced by its index, and each vector as native
    float32 bytes; ``None`` when the body is not plainly of that shape (decode it as is)."""
