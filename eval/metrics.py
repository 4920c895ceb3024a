"""CLIC metrics: exact SSE, PSNR (aggregate and per-image mean), MS-SSIM, bpp."""

import math
from collections.abc import Callable, Sequence

import numpy as np

from eval.images import check_rgb8
from eval.msssim import WEIGHTS as MSSSIM_WEIGHTS
from eval.msssim import WIN_SIZE as MSSSIM_WIN_SIZE
from eval.msssim import MsssimReference

# pytorch_msssim needs each side > (win_size - 1) * 2**(scales - 1), i.e. at least 161 px.
MSSSIM_MIN_SIDE = (MSSSIM_WIN_SIZE - 1) * 2 ** (len(MSSSIM_WEIGHTS) - 1) + 1


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    check_rgb8(a)
    check_rgb8(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")


def sse(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared differences over all RGB values of two H×W×3 uint8 images (exact, int64)."""
    _check_pair(a, b)
    diff = a.astype(np.int64) - b.astype(np.int64)
    return float(np.sum(diff * diff))


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for 8-bit data: 10·log10(255² / mse); inf when mse is 0."""
    if mse < 0:
        raise ValueError(f"mse must be >= 0, got {mse}")
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def aggregate_psnr(total_sse: float, total_pixels: int) -> float:
    """CLIC PSNR of a set: one MSE over all RGB values of all pixels, then PSNR."""
    if total_pixels <= 0:
        raise ValueError(f"total_pixels must be > 0, got {total_pixels}")
    return psnr_from_mse(total_sse / (3 * total_pixels))


def mean_psnr(per_image_psnrs: Sequence[float]) -> float:
    """Unweighted mean of per-image PSNRs (reported beside, never instead of, the aggregate)."""
    if len(per_image_psnrs) == 0:
        raise ValueError("no PSNR values")
    return float(np.mean(per_image_psnrs))


def _pad_to_msssim_size(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    pad = ((0, max(0, MSSSIM_MIN_SIDE - height)), (0, max(0, MSSSIM_MIN_SIDE - width)), (0, 0))
    return np.pad(image, pad, mode="edge")


def msssim_scorer(original: np.ndarray) -> Callable[[np.ndarray], float]:
    """MS-SSIM against one original for many candidates (``msssim_rgb(original, ·)``, with
    the original's half of the work done once)."""
    check_rgb8(original)
    reference = MsssimReference(_pad_to_msssim_size(original))

    def score(decoded: np.ndarray) -> float:
        _check_pair(original, decoded)
        return reference.score(_pad_to_msssim_size(decoded))

    return score


def msssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two H×W×3 uint8 images: 5 scales, standard weights, float64, pytorch_msssim's
    arithmetic (``eval.msssim``).

    Each channel is scored separately and the 3 values averaged. Policy for small images:
    a side shorter than MSSSIM_MIN_SIDE (161 px) is padded at the bottom/right by edge
    replication up to 161 px, identically in both images, before scoring.
    """
    return msssim_scorer(a)(b)


def weighted_msssim(values: Sequence[float], pixels: Sequence[int]) -> float:
    """Pixel-weighted mean MS-SSIM of a set: Σ pixels·msssim / Σ pixels."""
    v, p = np.asarray(values, dtype=np.float64), np.asarray(pixels, dtype=np.float64)
    if v.shape != p.shape or v.size == 0 or p.sum() <= 0:
        raise ValueError("need equally many values and pixel counts, with a positive total")
    return float(np.sum(v * p) / np.sum(p))


def bpp(total_bytes: int, total_pixels: int) -> float:
    """Bits per pixel: 8·bytes / pixels."""
    if total_pixels <= 0:
        raise ValueError(f"total_pixels must be > 0, got {total_pixels}")
    return 8 * total_bytes / total_pixels
