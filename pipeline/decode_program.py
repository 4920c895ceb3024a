"""Submission decoder: decode every file of a folder to PNG images.

Usage::

    python decode.py INPUT_DIR OUTPUT_DIR

Each input file becomes ``OUTPUT_DIR/<stem>.png``.  The format is told by the
file's magic bytes: JPEG, WebP, AVIF and JPEG 2000 are decoded by Pillow;
anything else must be a learned bitstream, decoded by the ``models`` package and
the ``weights`` folder that sit beside this program.

This file is copied verbatim into every submission as ``decoder/decode.py``.  It
must stay self-contained: Pillow and numpy (plus torch and compressai for
learned streams) and nothing of the project outside its own folder.  The
pipeline imports the same functions, so the RD table and the submission decode
with one code path.
"""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
EXTENSIONS = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif", "JPEG2000": "j2k"}


class UndecodableError(ValueError):
    """A file this decoder cannot turn into an image."""


def sniff_format(data: bytes) -> str | None:
    """Pillow's name for a classical image format, from magic bytes; None otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data[:4] == b"\xff\x4f\xff\x51" or data[:12] == JP2_SIGNATURE:
        return "JPEG2000"
    return None


def decode_classical(data: bytes, fmt: str) -> np.ndarray:
    """Decode a Pillow-readable file of a known format to H×W×3 uint8 RGB."""
    try:
        with Image.open(BytesIO(data), formats=[fmt]) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise UndecodableError(f"corrupt {fmt} file ({exc})") from None


def decode_learned(data: bytes, weights_dir: Path | None) -> np.ndarray:
    """Decode a learned bitstream with the ``models`` package importable here."""
    try:
        from models.codec import decode_stream, is_learned_stream
    except ImportError:
        raise UndecodableError("unknown format (no learned decoder in this package)") from None
    if not is_learned_stream(data):
        raise UndecodableError("unknown format (neither an image file nor a learned bitstream)")
    return decode_stream(data, weights_dir)


def decode_bytes(data: bytes, weights_dir: Path | None = None) -> np.ndarray:
    """Decode one file's bytes to H×W×3 uint8 RGB, whatever its format."""
    fmt = sniff_format(data)
    return decode_classical(data, fmt) if fmt else decode_learned(data, weights_dir)


def decode_folder(src: Path, dst: Path) -> int:
    """Decode every visible file of ``src`` to ``dst/<stem>.png``; return the count."""
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    dst.mkdir(parents=True, exist_ok=True)
    for path in files:
        try:
            image = decode_bytes(path.read_bytes(), HERE / "weights")
        except ValueError as exc:
            raise UndecodableError(f"{path.name}: {exc}") from None
        Image.fromarray(image, "RGB").save(dst / f"{path.stem}.png", format="PNG", compress_level=1)
    return len(files)


def check_self_contained() -> None:
    """Refuse to have used a ``models`` package from outside this program's folder."""
    models = sys.modules.get("models")
    if models is not None and HERE not in Path(models.__file__).resolve().parents:
        raise UndecodableError(f"learned decoder loaded from {models.__file__}, outside {HERE}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python decode.py INPUT_DIR OUTPUT_DIR", file=sys.stderr)
        return 2
    sys.dont_write_bytecode = True  # decoding must not grow the package (__pycache__)
    sys.path.insert(0, str(HERE))
    try:
        count = decode_folder(Path(argv[0]), Path(argv[1]))
        check_self_contained()
    except (UndecodableError, OSError) as exc:
        print(f"decode.py: {exc}", file=sys.stderr)
        return 2
    print(f"decoded {count} files to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
