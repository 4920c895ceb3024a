"""Set-level conventions (CLIC): aggregate PSNR, pixel-weighted MS-SSIM, bpp and byte caps."""

import math
from fractions import Fraction

import numpy as np

from eval.metrics import aggregate_psnr, weighted_msssim  # noqa: F401  (re-exported: one definition)
from eval.metrics import bpp as bits_per_pixel  # noqa: F401

PEAK = 255.0


def cap_from_bpp(bpp: float | str | Fraction, total_pixels: int) -> int:
    """floor(bpp · total_pixels / 8) in exact rational arithmetic: 0.15 means 15/100, not the nearest double."""
    rate = bpp if isinstance(bpp, Fraction) else Fraction(str(bpp))
    if rate < 0 or total_pixels < 0:
        raise ValueError(f"bpp and total_pixels must be >= 0, got {bpp} and {total_pixels}")
    return math.floor(rate * int(total_pixels) / 8)


def sse_cap(min_psnr: float, total_pixels: int) -> float:
    """The largest total SSE whose aggregate PSNR is still min_psnr."""
    return 3 * total_pixels * PEAK**2 / 10 ** (min_psnr / 10)


def per_image_psnr(sse: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Each image's own PSNR (inf where it is lossless)."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(PEAK**2 * 3 * np.asarray(pixels, dtype=float) / np.asarray(sse, dtype=float))
