from typing_extensions import Buffer

def parse_float32_array(json_array: Buffer, /) -> bytes:
    """The numbers of a JSON array as native float32 bytes (each number's correctly rounded
    double, rounded to float32). ``ValueError`` for anything else, or for a value outside
    float32 range."""
