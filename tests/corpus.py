"""The bad-input corpus of the reliability tests, generated at test time (no binary junk in git).

Every generator writes into a folder it is given and returns what it wrote plus the
phrase the one-line error must contain.  The corpus:

* images: truncated PNG, zero-byte file, text with an image extension, a decompression
  bomb (a valid PNG header claiming 20000×20000 pixels), an unreadable file; folders:
  empty, missing, two images sharing a stem;
* supported odd images: gray, gray+alpha, RGBA, palette (with transparency), 16-bit gray,
  16-bit RGB, CMYK JPEG, 1×1, 3×5000, 67×65 (not a multiple of 64);
* learned bitstreams: truncated, a flipped byte, wrong magic, unknown model id, a header
  claiming 65535×65535 pixels (valid checksum), trailing bytes;
* classical files for the decoder: truncated JPEG, a JPEG header claiming 65000×65000;
* RD tables: missing columns, NaN / inf / negative values, a row without candidate,
  text in a number column;
* manifest names: ``../`` and absolute paths.
"""

from __future__ import annotations

import builtins
import io
import os
import struct
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT / "data" / "kodak"


def kodak_crop(stem: str = "kodim01", left: int = 300, top: int = 200, width: int = 64, height: int = 48) -> Image.Image:
    with Image.open(KODAK / f"{stem}.png") as im:
        return im.convert("RGB").crop((left, top, left + width, top + height))


# The three 128×96 Kodak crops of the pipeline tests (the ``images`` fixture of conftest.py).
CROPS = {"kodim01": (300, 200), "kodim05": (40, 300), "kodim23": (500, 120)}  # stem -> left, top


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (for what Pillow cannot write: 16-bit RGB, lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


# -- bad images ----------------------------------------------------------------------------

def _truncated(folder: Path) -> Path:
    data = png_bytes(kodak_crop())
    (path := folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return path


def _zero(folder: Path) -> Path:
    (path := folder / "zero.png").write_bytes(b"")
    return path


def _text(folder: Path) -> Path:
    (path := folder / "notes.jpg").write_text("this is not an image\n")
    return path


def _bomb(folder: Path) -> Path:
    (path := folder / "bomb.png").write_bytes(raw_png(20000, 20000, 1, 0, b"\x00"))
    return path


BAD_IMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated png": (_truncated, "corrupt or truncated"),
    "zero-byte file": (_zero, "empty file"),
    "text named .jpg": (_text, "not an image"),
    "decompression bomb": (_bomb, "decompression bomb"),
}


@contextmanager
def unreadable(path: Path):
    """Make ``path`` unreadable: chmod 000, and where that does not stop us (root), refuse
    every open of it from Python (Pillow and pathlib both open through ``io.open``)."""
    mode = path.stat().st_mode
    os.chmod(path, 0)
    real_open = io.open
    target = str(path.resolve())

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == target:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    as_root = os.access(path, os.R_OK)
    if as_root:
        builtins.open = io.open = refusing_open
    try:
        yield path
    finally:
        if as_root:
            builtins.open = io.open = real_open
        os.chmod(path, mode)


# -- bad folders ---------------------------------------------------------------------------

def _empty_folder(folder: Path) -> Path:
    for path in folder.iterdir():
        path.unlink()
    return folder


def _duplicate_stems(folder: Path) -> Path:
    kodak_crop().save(folder / "twin.png")
    kodak_crop().save(folder / "twin.jpg")
    return folder


def _missing_folder(folder: Path) -> Path:
    return folder / "no-such-folder"


BAD_FOLDERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty folder": (_empty_folder, "no images"),
    "duplicate stems": (_duplicate_stems, "same stem"),
    "missing folder": (_missing_folder, "folder not found"),
}


# -- supported odd images ------------------------------------------------------------------

def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth-ish content (a Kodak crop, tiled) of any size."""
    base = np.asarray(kodak_crop(width=min(width, 256), height=min(height, 256)))
    reps = (-(-height // base.shape[0]), -(-width // base.shape[1]), 1)
    return np.tile(base, reps)[:height, :width]


def odd_images(folder: Path) -> dict[str, Path]:
    """The supported odd images, one file each; returns stem -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _rgb(48, 40)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    alpha = np.linspace(0, 255, rgb.shape[0] * rgb.shape[1]).astype(np.uint8).reshape(rgb.shape[:2])
    palette = Image.fromarray(rgb).quantize(colors=37)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 3
    noise = np.arange(gray.size).reshape(gray.shape) % 200
    v16 = np.clip(gray.astype(np.int64) * 257 + noise - 100, 0, 65535).astype(np.uint16)  # uses the low byte
    rgb16 = (rgb.astype(np.uint16) * 256 + 255).astype(">u2")  # high bytes = rgb, low bytes all 0xff
    cmyk = Image.fromarray(np.concatenate([255 - rgb, alpha[:, :, None] // 4], axis=2), mode="CMYK")
    writers = {
        "gray": lambda p: Image.fromarray(gray).save(p),
        "gray_alpha": lambda p: Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)]).save(p),
        "rgba": lambda p: Image.fromarray(np.dstack([rgb, alpha])).save(p),
        "palette": lambda p: palette.save(p),
        "palette_transparency": lambda p: palette_t.save(p, transparency=3),
        "gray16": lambda p: Image.fromarray(v16).save(p),
        "rgb16": lambda p: p.write_bytes(raw_png(40, 48, 16, 2, b"".join(b"\x00" + r.tobytes() for r in rgb16))),
        "one_pixel": lambda p: Image.fromarray(rgb[:1, :1]).save(p),
        "strip_3x5000": lambda p: Image.fromarray(_rgb(3, 5000)).save(p),
        "size_67x65": lambda p: Image.fromarray(_rgb(67, 65)).save(p),
    }
    paths = {}
    for stem, write in writers.items():
        write(path := folder / f"{stem}.png")
        paths[stem] = path
    cmyk.save(path := folder / "cmyk.jpg", quality=95)
    paths["cmyk"] = path
    return paths


# -- bitstreams ----------------------------------------------------------------------------

def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "big")


def bad_bitstreams(valid: bytes) -> dict[str, tuple[bytes, str]]:
    """Damaged copies of a valid learned file: name -> (bytes, phrase of the error)."""
    from models.runtime import bitstream

    header, streams = bitstream.parse(valid)
    flipped = bytearray(valid)
    flipped[len(valid) // 2] ^= 0x20
    huge = bitstream._FIXED.pack(bitstream.MAGIC, bitstream.VERSION, header.model_id, 256, 65535, 65535)
    huge += b"".join(bitstream._varint(len(s)) for s in streams[:2]) + b"".join(streams)
    return {
        "truncated": (valid[: len(valid) // 2], "checksum mismatch"),
        "flipped byte": (bytes(flipped), "checksum mismatch"),
        "wrong magic": (b"LIX" + valid[3:], "unknown format"),
        "unknown model id": (with_crc(valid[:4] + bytes([77]) + valid[5:-4]), "unknown model id 77"),
        "65535x65535 header": (with_crc(huge), "invalid image size 65535x65535"),
        "trailing bytes": (valid + b"\x00junk", "checksum mismatch"),
        "zero bytes": (b"", "unknown format"),
    }


def bad_classical_files() -> dict[str, tuple[bytes, str]]:
    """Damaged classical files for the decoder: name -> (bytes, phrase)."""
    buffer = io.BytesIO()
    kodak_crop().save(buffer, format="JPEG", quality=80)
    jpeg = buffer.getvalue()
    sof = jpeg.index(b"\xff\xc0")
    bomb = jpeg[: sof + 5] + struct.pack(">HH", 65000, 65000) + jpeg[sof + 9 :]
    return {
        "truncated jpeg": (jpeg[: len(jpeg) // 3], "corrupt JPEG"),
        "jpeg bomb header": (bomb, "decompression bomb"),
    }


# -- RD tables -----------------------------------------------------------------------------

def rd_table() -> pd.DataFrame:
    """A small valid RD table: 3 images × 3 candidates."""
    rows = []
    for i, image in enumerate(["a", "b", "c"]):
        for j, (candidate, size) in enumerate([("jpeg-q8", 300), ("jpeg-q35", 700), ("jpeg-q75", 1500)]):
            rows.append({"image": image, "candidate": candidate, "family": "jpeg", "bytes": size + 10 * i,
                         "pixels": 6144, "sse": 9e5 / (j + 1) + i, "msssim": 0.8 + 0.05 * j})
    return pd.DataFrame(rows)


def bad_rd_tables() -> dict[str, tuple[str, str]]:
    """name -> (CSV text, phrase of the error)."""
    good = rd_table()

    def changed(column: str, value: object) -> str:
        table = good.astype(object)
        table.loc[4, column] = value
        return table.to_csv(index=False)

    return {
        "missing columns": (good.drop(columns=["sse", "pixels"]).to_csv(index=False), "missing column(s) pixels, sse"),
        "NaN sse": (changed("sse", "nan"), "has NaN"),
        "inf bytes": (changed("bytes", "inf"), "has inf"),
        "negative sse": (changed("sse", -5.0), "negative value"),
        "image with no candidate": (changed("candidate", ""), "'candidate' is empty"),
        "text in a number column": (changed("msssim", "high"), "not a number"),
        "not a CSV": ("\x00\x01\x02 binary", "the RD table is empty"),
    }


# -- manifests -----------------------------------------------------------------------------

BAD_NAMES = ["../escape", "../../etc/passwd", "/tmp/absolute", "sub/dir", "..", "a\\b"]
