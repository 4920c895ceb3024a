"""Read a safetensors file with the standard library and torch (no ``safetensors`` package).

The format: an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian data.  Never unpickles.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

DTYPES = {"F16": torch.float16, "F32": torch.float32, "F64": torch.float64, "I8": torch.int8, "U8": torch.uint8,
          "I16": torch.int16, "I32": torch.int32, "I64": torch.int64, "BF16": torch.bfloat16, "BOOL": torch.bool}


class BadWeightsFileError(ValueError):
    """A weights file that is missing or not a readable safetensors file."""


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``path``; :class:`BadWeightsFileError` (one line naming it) otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadWeightsFileError(f"{path}: cannot read weights ({exc.strerror})") from None
    try:
        (size,) = struct.unpack_from("<Q", data)
        header = json.loads(data[8 : 8 + size])
        body = memoryview(data)[8 + size :]
        tensors = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            start, end = spec["data_offsets"]
            if not 0 <= start <= end <= len(body):
                raise ValueError(f"{name}: byte range outside the file")
            flat = torch.frombuffer(bytearray(body[start:end]), dtype=DTYPES[spec["dtype"]]) if end > start else \
                torch.empty(0, dtype=DTYPES[spec["dtype"]])
            tensors[name] = flat.reshape(spec["shape"])
    except (struct.error, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise BadWeightsFileError(f"{path}: not a readable safetensors file ({exc})") from None
    return tensors
