"""Set-level conventions (CLIC): aggregate PSNR, pixel-weighted MS-SSIM, bpp and byte caps."""

import math
from fractions import Fraction

import numpy as np

PEAK = 255.0


def cap_from_bpp(bpp: float | str | Fraction, total_pixels: int) -> int:
    """floor(bpp · total_pixels / 8) in exact rational arithmetic: 0.15 means 15/100, not the nearest double."""
    rate = bpp if isinstance(bpp, Fraction) else Fraction(str(bpp))
    if rate < 0 or total_pixels < 0:
        raise ValueError(f"bpp and total_pixels must be >= 0, got {bpp} and {total_pixels}")
    return math.floor(rate * int(total_pixels) / 8)


def aggregate_psnr(total_sse: float, total_pixels: int) -> float:
    """10·log10(255² / MSE) with one MSE over all RGB values of the set; inf when the SSE is 0."""
    mse = total_sse / (3 * total_pixels)
    return math.inf if mse <= 0 else 10 * math.log10(PEAK**2 / mse)


def sse_cap(min_psnr: float, total_pixels: int) -> float:
    """The largest total SSE whose aggregate PSNR is still min_psnr."""
    return 3 * total_pixels * PEAK**2 / 10 ** (min_psnr / 10)


def bits_per_pixel(total_bytes: int, total_pixels: int) -> float:
    """8 · bytes / pixels."""
    return 8 * total_bytes / total_pixels


def weighted_msssim(msssim: np.ndarray, pixels: np.ndarray) -> float:
    """Σ pixels·msssim / Σ pixels over per-image values."""
    return float((pixels * msssim).sum() / pixels.sum())


def per_image_psnr(sse: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Each image's own PSNR (inf where it is lossless)."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(PEAK**2 * 3 * np.asarray(pixels, dtype=float) / np.asarray(sse, dtype=float))
