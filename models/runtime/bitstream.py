"""The learned codec's file format (version 2).

::

    offset  size  field
    0       3     magic  b"LIC"
    3       1     format version (2)
    4       1     model id      (a ladder file's ``model_id``)
    5       2     rate × 256    (uint16, big-endian; fractional rates allowed)
    7       2     height        (uint16, 1 … 65535)
    9       2     width         (uint16, 1 … 65535)
    11      var   length of stream 0, LEB128 varint
    …       var   length of stream 1, LEB128 varint
    …       …     stream 0 | stream 1 | stream 2   (the last one fills the rest)
    end-4   4     CRC-32 of every byte before it (big-endian)

Streams are rANS strings (CompressAI's coder): 0 = the anchor half of ``y``, 1 = the
non-anchor half (checkerboard; each half channel by channel, positions in raster
order), 2 = the hyper-latent ``z``.  Version 2 chooses every symbol's table and mean
in integers (``integer_prior`` beside this module), so a stream decodes the same everywhere;
version 1 chose them in floating point, and is refused rather than decoded into
damaged pixels on a machine that rounds differently.  The padding to a
multiple of 64 and the latent shapes follow from height and width, so they are
not stored.

Safety: :func:`parse` checks every field (magic, version, checksum, size, stream
lengths) before the decoder allocates anything, and raises :class:`BadStreamError`
(one line) on any fault.  The checksum makes a flipped or truncated file an error
rather than garbage.  A crafted file can still carry a correct checksum, so the size
is bounded on its own: ``height × width`` must not exceed :data:`MAX_PIXELS` = 2**25
(33.5 megapixels, e.g. 8192 × 4096; CLIC images are at most about 4 MP).  Decoding
memory grows linearly with the pixel count, so this caps what a header can make the
decoder allocate, whatever it claims; :func:`pack` refuses to write such files too, so
everything the encoder writes can be decoded.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"LIC"
VERSION = 2
RETIRED_VERSIONS = {1: "float entropy parameters, decodable only where it was encoded"}
N_STREAMS = 3
MAX_PIXELS = 1 << 25  # refuse headers claiming huge images before anything is allocated
_FIXED = struct.Struct(">3sBBHHH")
_CRC = struct.Struct(">I")


class BadStreamError(ValueError):
    """A file that is not a valid learned bitstream."""


@dataclass(frozen=True)
class Header:
    model_id: int
    rate: float
    height: int
    width: int


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 35:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise BadStreamError("truncated or malformed stream length")


def rate_code(rate: float) -> int:
    code = round(rate * 256)
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"rate {rate} out of range")
    return code


def check_size(height: int, width: int) -> None:
    """ValueError unless a header can store this image size (also checked before encoding)."""
    if not (1 <= height <= 0xFFFF and 1 <= width <= 0xFFFF):
        raise ValueError(f"image size {width}x{height} not codable")
    if height * width > MAX_PIXELS:
        raise ValueError(f"image size {width}x{height} exceeds the learned codec's limit of {MAX_PIXELS} pixels")


def pack(header: Header, streams: list[bytes]) -> bytes:
    """Serialise a header and its streams into one file's bytes."""
    if len(streams) != N_STREAMS:
        raise ValueError(f"expected {N_STREAMS} streams, got {len(streams)}")
    check_size(header.height, header.width)
    body = _FIXED.pack(
        MAGIC, VERSION, header.model_id, rate_code(header.rate), header.height, header.width
    )
    body += b"".join(_varint(len(s)) for s in streams[:-1]) + b"".join(streams)
    return body + _CRC.pack(zlib.crc32(body))


def parse(data: bytes) -> tuple[Header, list[bytes]]:
    """Check and split a file's bytes; :class:`BadStreamError` on any fault."""
    if len(data) < _FIXED.size + _CRC.size:
        raise BadStreamError(f"file too short ({len(data)} bytes) for a learned bitstream")
    magic, version, model_id, rate, height, width = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise BadStreamError("wrong magic: not a learned bitstream")
    if version in RETIRED_VERSIONS:
        raise BadStreamError(f"format version {version} ({RETIRED_VERSIONS[version]}); re-encode the image")
    if version != VERSION:
        raise BadStreamError(f"unsupported format version {version} (this decoder reads {VERSION})")
    end = len(data) - _CRC.size
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise BadStreamError("checksum mismatch: the file is truncated or altered")
    if height == 0 or width == 0 or height * width > MAX_PIXELS:
        raise BadStreamError(
            f"header claims an invalid image size {width}x{height} (limit {MAX_PIXELS} pixels)"
        )
    pos, lengths = _FIXED.size, []
    for _ in range(N_STREAMS - 1):
        n, pos = _read_varint(data, pos, end)
        lengths.append(n)
    if sum(lengths) > end - pos:
        raise BadStreamError("stream lengths exceed the file size")
    streams = []
    for n in lengths:
        streams.append(data[pos : pos + n])
        pos += n
    streams.append(data[pos:end])
    return Header(model_id, rate / 256, height, width), streams


def is_learned_stream(data: bytes) -> bool:
    """Whether the bytes start like a learned bitstream (magic only)."""
    return data[:3] == MAGIC
