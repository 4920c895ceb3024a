"""Classical candidates: JPEG, WebP, AVIF and JPEG 2000 through Pillow.

Each family is one Pillow format, fixed encoder options (set explicitly, so a
Pillow default change cannot move the ladder) and a grid of settings.  The
grids were measured on Kodak (24 images, ``bench/results/pipeline.md`` has the
per-candidate table) to span about 0.05–2 bpp with roughly geometric steps;
AVIF and JPEG 2000, the two families the transparent track picks, go on to
about 3 bpp (42–43 dB on Kodak): with 2 bpp as their top, 14 of the 24 Kodak
images sat on it in the 40 dB allocation.

* ``jpeg``: quality; 4:2:0, Huffman-optimised, baseline.  Its floor is ≈0.09 bpp.
* ``webp``: quality, ``method=6`` (slowest, best).  Floor ≈0.1 bpp.
* ``avif``: quality (libavif 0–100), ``speed=6``, 4:2:0, aom, one thread.
* ``avif444``: the high-rate end for the transparent track: quality 60–94,
  4:4:4 (full-resolution chroma counts in RGB PSNR) and ``speed=4``; at 40 dB
  on six Kodak images 9.6 % fewer bytes than ``avif``, for about 6× its encode
  time (``bench/results/avif_options.md``; speed 3 saves 12.4 % at 2× more).
* ``avif444s3``: the low-rate reference, not in the ``classical`` ladder (name it:
  ``--ladder hybrid,avif444s3``): quality 0–54, 4:4:4, ``speed=3``.  At 0.075–0.3 bpp it
  beats ``avif`` by 0.38–0.59 dB on Kodak and on high-resolution photos, for about 12×
  its encode time; speed 2 adds at most 0.05 dB more (``bench/results/avif_low_rate.md``).
  Too slow for every grid, it is what a learned ladder has to beat.
* ``j2k``:  compression ratio (``quality_mode="rates"``, 24 bpp / ratio), 9/7
  irreversible wavelet with the colour transform, raw codestream (no JP2 box).

Files are the plain standard formats, so the decoder tells them apart by magic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import PIL
from PIL import Image

from ..decode_program import decode_classical
from ..errors import PipelineError


def avif_options(quality: int, speed: int, subsampling: str) -> dict[str, Any]:
    """Pillow's AVIF save options: libaom, one thread, full range, no tiling."""
    return {
        "quality": quality, "speed": speed, "subsampling": subsampling, "codec": "aom",
        "max_threads": 1, "range": "full", "autotiling": False,
    }


@dataclass(frozen=True)
class Family:
    """One Pillow format with its fixed options and its grid of settings."""

    name: str
    pillow_format: str
    prefix: str  # "q" for quality, "r" for compression ratio
    grid: tuple[int, ...]
    options: Callable[[int], dict[str, Any]]  # setting -> Pillow save options
    in_classical: bool = True  # part of the ``classical`` ladder (else named on its own only)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "jpeg", "JPEG", "q", (2, 5, 8, 12, 18, 25, 35, 50, 62, 75, 85, 92),
            lambda q: {"quality": q, "subsampling": 2, "optimize": True, "progressive": False},
        ),
        Family(
            "webp", "WEBP", "q", (0, 3, 8, 15, 25, 35, 50, 65, 75, 85, 92, 97),
            lambda q: {"quality": q, "method": 6, "lossless": False, "exact": False},
        ),
        Family(
            "avif", "AVIF", "q", (0, 8, 15, 22, 30, 38, 46, 54, 62, 70, 78, 86, 90, 94),
            lambda q: avif_options(q, speed=6, subsampling="4:2:0"),
        ),
        Family(
            "avif444", "AVIF", "q", (60, 66, 71, 75, 79, 82, 85, 88, 91, 94),
            lambda q: avif_options(q, speed=4, subsampling="4:4:4"),
        ),
        Family(
            "avif444s3", "AVIF", "q", (0, 8, 15, 22, 30, 38, 46, 54),
            lambda q: avif_options(q, speed=3, subsampling="4:4:4"), in_classical=False,
        ),
        Family(
            "j2k", "JPEG2000", "r", (480, 340, 240, 170, 120, 85, 60, 42, 30, 21, 15, 12, 10, 8),
            lambda r: {
                "quality_mode": "rates", "quality_layers": [r], "irreversible": True,
                "mct": 1, "no_jp2": True,
            },
        ),
    )
}


@dataclass(frozen=True)
class PillowCodec:
    """A classical family at one setting (satisfies :class:`~pipeline.codecs.base.Codec`)."""

    spec: Family
    setting: int

    @property
    def family(self) -> str:
        return self.spec.name

    @property
    def rate_label(self) -> str:
        return f"{self.spec.prefix}{self.setting}"

    @property
    def name(self) -> str:
        return f"{self.family}-{self.rate_label}"

    @property
    def fingerprint(self) -> str:
        options = json.dumps(self.spec.options(self.setting), sort_keys=True)
        return f"pillow {PIL.__version__} {self.spec.pillow_format} {options}"

    def encode(self, image: np.ndarray) -> bytes:
        buf = BytesIO()
        Image.fromarray(image, "RGB").save(
            buf, format=self.spec.pillow_format, **self.spec.options(self.setting)
        )
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return decode_classical(data, self.spec.pillow_format)


def candidate_names(family: str | None = None) -> list[str]:
    """The ``classical`` ladder's candidate names, family by family, lowest rate first, or
    those of one family (``avif``, ``avif444s3``…)."""
    return [PillowCodec(f, s).name for f in FAMILIES.values() if (f.name == family if family else f.in_classical)
            for s in f.grid]


def make_codec(name: str) -> PillowCodec:
    """The classical candidate called ``name`` (e.g. ``avif-q30``)."""
    family, _, label = name.partition("-")
    spec = FAMILIES.get(family)
    if spec is None or not label.startswith(spec.prefix) or not label[1:].isdigit():
        raise PipelineError(f"unknown candidate {name!r}")
    return PillowCodec(spec, int(label[1:]))
