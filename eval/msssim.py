"""MS-SSIM against one original, many times: pytorch_msssim's arithmetic with the original's half done once.

An encode grid scores every candidate of an image against the same original.  Of the five
Gaussian filterings per scale that MS-SSIM needs (μx, μy, E[x²], E[y²], E[xy]), two and the
downsampling of the original depend on the original alone, so :class:`MsssimReference`
computes them once.  The filtering itself runs in float64 with scipy's separable
correlation (faster on a CPU than torch's grouped convolution), on pytorch_msssim's own
float32 Gaussian window; pooling is torch's ``avg_pool2d``, as there.  The result agrees
with ``pytorch_msssim.ms_ssim`` in float64 to rounding (tests pin ≤ 1e-9 on Kodak;
``bench/bench_msssim.py`` measures both): float32 throughout would be faster still, but it
was measured off by up to 4.5e-5 on Kodak, far outside the 1e-6 this must hold.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.ndimage import correlate1d

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # K = (0.01, 0.03), data range 255


@cache
def _window() -> np.ndarray:
    """pytorch_msssim's 1-D Gaussian window (built in float32 there), as float64."""
    from pytorch_msssim.ssim import _fspecial_gauss_1d

    return _fspecial_gauss_1d(WIN_SIZE, WIN_SIGMA).double().numpy().ravel()


def _blur(x: np.ndarray) -> np.ndarray:
    """The 'valid' Gaussian filtering of a (C, H, W) array along H and W."""
    g, edge = _window(), WIN_SIZE // 2
    out = correlate1d(correlate1d(x, g, axis=1, mode="constant"), g, axis=2, mode="constant")
    return out[:, edge:-edge, edge:-edge]


def _pool(x: np.ndarray) -> np.ndarray:
    """pytorch_msssim's downsampling: a 2×2 average, zero-padded by one on each odd side."""
    import torch
    import torch.nn.functional as F

    padding = [s % 2 for s in x.shape[1:]]
    return F.avg_pool2d(torch.from_numpy(x)[None], kernel_size=2, padding=padding)[0].numpy()


class MsssimReference:
    """An original (H×W×3 uint8, each side >= 161 px) ready to score candidates against."""

    def __init__(self, original: np.ndarray):
        x = np.ascontiguousarray(original.transpose(2, 0, 1), dtype=np.float64)
        self.levels = []  # per scale: x, μx, E[x²] (the original's half of the work)
        for level in range(len(WEIGHTS)):
            self.levels.append((x, _blur(x), _blur(x * x)))
            if level < len(WEIGHTS) - 1:
                x = _pool(x)

    def score(self, decoded: np.ndarray) -> float:
        """MS-SSIM of ``decoded`` against the original: 5 scales, standard weights, channels averaged."""
        y = np.ascontiguousarray(decoded.transpose(2, 0, 1), dtype=np.float64)
        factors = []
        for level, (x, mu_x, xx) in enumerate(self.levels):
            mu_y = _blur(y)
            mu_xy = mu_x * mu_y
            sigma_x, sigma_y = xx - mu_x**2, _blur(y * y) - mu_y**2
            sigma_xy = _blur(x * y) - mu_xy
            cs_map = (2 * sigma_xy + C2) / (sigma_x + sigma_y + C2)
            if level < len(WEIGHTS) - 1:
                factors.append(np.maximum(cs_map.reshape(3, -1).mean(axis=1), 0))
                y = _pool(y)
            else:
                ssim_map = (2 * mu_xy + C1) / (mu_x**2 + mu_y**2 + C1) * cs_map
                factors.append(np.maximum(ssim_map.reshape(3, -1).mean(axis=1), 0))
        per_channel = np.prod(np.stack(factors) ** np.array(WEIGHTS)[:, None], axis=0)
        return float(per_channel.mean())
