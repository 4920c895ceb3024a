"""eval.metrics against independent numpy/scipy computations on real Kodak crops."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim
from scipy.signal import convolve2d

from eval.metrics import (
    aggregate_psnr, bpp, mean_psnr, msssim_rgb, msssim_scorer, psnr_from_mse, sse, weighted_msssim,
)

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"
WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _kodak(name: str, height: int, width: int, top: int = 0, left: int = 0) -> np.ndarray:
    with Image.open(KODAK / name) as img:
        return np.asarray(img.convert("RGB"))[top:top + height, left:left + width].copy()


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _noisy(rgb: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, rgb.shape)
    return np.clip(np.rint(rgb + noise), 0, 255).astype(np.uint8)


def _numpy_psnr(a_list, b_list) -> float:
    diffs = np.concatenate([(a.astype(np.float64) - b).ravel() for a, b in zip(a_list, b_list)])
    return 10 * np.log10(255.0**2 / np.mean(diffs**2))


def test_sse_matches_numpy_and_is_exact():
    a = _kodak("kodim01.png", 64, 48)
    b = _noisy(a, 10)
    assert sse(a, b) == np.sum((a.astype(np.float64) - b) ** 2)
    black, white = np.zeros((1000, 1000, 3), np.uint8), np.full((1000, 1000, 3), 255, np.uint8)
    assert sse(black, white) == 255**2 * 3_000_000  # would overflow uint8/int32 arithmetic


def test_sse_rejects_mismatched_or_non_uint8():
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        sse(a, np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        sse(a, a.astype(np.float64))


def test_psnr_from_mse_values():
    assert psnr_from_mse(1.0) == pytest.approx(20 * math.log10(255))
    assert psnr_from_mse(255.0**2) == 0.0
    assert psnr_from_mse(0.0) == math.inf
    with pytest.raises(ValueError):
        psnr_from_mse(-1.0)


def test_aggregate_psnr_is_one_mse_over_the_set_not_the_mean():
    originals = [_kodak("kodim01.png", 100, 120), _kodak("kodim02.png", 60, 50)]
    recons = [_noisy(originals[0], 3), _noisy(originals[1], 20, seed=1)]
    errors = [sse(a, b) for a, b in zip(originals, recons)]
    pixels = [a.shape[0] * a.shape[1] for a in originals]
    got = aggregate_psnr(sum(errors), sum(pixels))
    assert got == pytest.approx(_numpy_psnr(originals, recons), abs=1e-10)
    per_image = [_numpy_psnr([a], [b]) for a, b in zip(originals, recons)]
    assert [aggregate_psnr(e, p) for e, p in zip(errors, pixels)] == pytest.approx(per_image, abs=1e-10)
    assert mean_psnr(per_image) == pytest.approx(np.mean(per_image))
    assert abs(got - mean_psnr(per_image)) > 1.0  # the two conventions really differ here


def test_aggregate_psnr_of_identical_set_is_inf():
    assert aggregate_psnr(0.0, 10) == math.inf
    with pytest.raises(ValueError):
        aggregate_psnr(1.0, 0)


def test_weighted_msssim_and_bpp():
    values, pixels = [0.9, 0.99, 0.95], [100, 300, 50]
    assert weighted_msssim(values, pixels) == pytest.approx(np.dot(values, pixels) / np.sum(pixels))
    assert bpp(1000, 100 * 100) == 0.8
    with pytest.raises(ValueError):
        weighted_msssim([0.9], [1, 2])


# --- MS-SSIM ---------------------------------------------------------------------------


def _reference_msssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2003, straight from the paper: Gaussian 11x11 (sigma 1.5) 'valid' window,
    K1 .01, K2 .03, L 255, 2x2 average pooling, contrast-structure at scales 1-4, full SSIM at
    scale 5, computed per channel and averaged over RGB. Needs sides divisible by 16."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / g.sum() ** 2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z):
        return convolve2d(z, window, mode="valid")

    def pool(z):
        return z.reshape(z.shape[0] // 2, 2, z.shape[1] // 2, 2).mean(axis=(1, 3))

    per_channel = []
    for c in range(3):
        x, y = a[:, :, c].astype(np.float64), b[:, :, c].astype(np.float64)
        value = 1.0
        for scale, weight in enumerate(WEIGHTS):
            mx, my = blur(x), blur(y)
            vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
            cs = (2 * cxy + c2) / (vx + vy + c2)
            if scale == len(WEIGHTS) - 1:
                value *= np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs) ** weight
            else:
                value *= np.mean(cs) ** weight
                x, y = pool(x), pool(y)
        per_channel.append(value)
    return float(np.mean(per_channel))


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return _kodak("kodim01.png", 256, 256, top=128, left=256)


def test_msssim_matches_independent_reference_on_kodak_jpeg(crop):
    recon = _jpeg(crop, quality=20)
    expected = _reference_msssim(crop, recon)
    assert 0.8 < expected < 0.999
    assert msssim_rgb(crop, recon) == pytest.approx(expected, abs=1e-4)


def test_msssim_identical_is_one_and_symmetric(crop):
    assert msssim_rgb(crop, crop) == pytest.approx(1.0, abs=1e-12)
    recon = _jpeg(crop, quality=30)
    assert msssim_rgb(crop, recon) == pytest.approx(msssim_rgb(recon, crop), abs=1e-12)


def test_msssim_decreases_with_noise(crop):
    values = [msssim_rgb(crop, _noisy(crop, sigma)) for sigma in (1, 4, 16, 48)]
    assert all(later < earlier for earlier, later in zip(values, values[1:]))


def test_small_images_are_edge_padded_to_161(crop):
    small = crop[:64, :100]
    recon = _noisy(small, 8)
    padded = [np.pad(z, ((0, 97), (0, 61), (0, 0)), mode="edge").astype(np.float64) for z in (small, recon)]
    x, y = (torch.from_numpy(z).permute(2, 0, 1)[None] for z in padded)
    expected = float(ms_ssim(x, y, data_range=255, weights=list(WEIGHTS)))
    assert msssim_rgb(small, recon) == pytest.approx(expected, abs=1e-12)
    assert msssim_rgb(crop[:1, :1], crop[:1, :1]) == pytest.approx(1.0)


@pytest.mark.parametrize("name, height, width", [("kodim05.png", 512, 768), ("kodim19.png", 391, 277)])
def test_msssim_agrees_with_pytorch_msssim_in_float64_to_rounding(name, height, width):
    """eval.msssim reimplements pytorch_msssim's arithmetic (to reuse the original's half): it must
    agree in float64 at every quality, on a full Kodak image and on one with odd sides (which
    exercise the zero-padded pooling)."""
    original = _kodak(name, height, width)
    score = msssim_scorer(original)
    x = torch.from_numpy(original.astype(np.float64)).permute(2, 0, 1)[None]
    for quality in (3, 40, 97):
        recon = _jpeg(original, quality=quality)
        y = torch.from_numpy(recon.astype(np.float64)).permute(2, 0, 1)[None]
        expected = float(ms_ssim(x, y, data_range=255, win_size=11, weights=list(WEIGHTS)))
        assert score(recon) == pytest.approx(expected, abs=1e-9)
        assert msssim_rgb(original, recon) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="shapes differ"):
        score(original[:-1])
