"""Synthetic RD tables shaped like real ones, for tests and the benchmark.

Each image has a size, a complexity κ (bpp needed for a given quality scales with it) and its own
PSNR / MS-SSIM-dB lines in log2(bpp / κ), as learned and classical codecs show on Kodak/CLIC
(about 3.3 dB PSNR per doubling of the rate). Candidates come from up to four codec families, each a
ladder of quality levels; every number gets a little noise, so curves are convex-ish, not convex,
and some candidates are dominated.
"""

import numpy as np
import pandas as pd

# family, PSNR offset (dB), MS-SSIM offset (dB)
FAMILIES = (("learned-psnr", 0.0, 0.0), ("learned-msssim", -0.8, 0.8), ("bpg", -1.0, -0.6), ("jpeg", -3.0, -2.0))


def synthetic_rd_table(n_images: int, n_candidates: int, seed: int = 0, bpp_range: tuple[float, float] = (0.03, 4.0),
                       noise: float = 1.0) -> pd.DataFrame:
    """An RD table with n_images × n_candidates rows (plus width, height and rate_label extra columns)."""
    rng = np.random.default_rng(seed)
    n_families = min(len(FAMILIES), max(1, n_candidates // 8))
    levels = [n_candidates // n_families + (f < n_candidates % n_families) for f in range(n_families)]
    width = rng.integers(512, 2049, n_images)
    height = np.round(width * rng.uniform(0.5, 1.0, n_images)).astype(np.int64)
    pixels = width * height
    complexity = rng.lognormal(0.0, 0.45, n_images)
    psnr_at_k, msssim_db_at_k = rng.normal(38, 1.5, n_images), rng.normal(20, 1.0, n_images)
    psnr_slope, msssim_slope = rng.normal(3.3, 0.3, n_images), rng.normal(2.8, 0.25, n_images)

    names, families, ladder, psnr_off, msssim_off = [], [], [], [], []
    for (family, p_off, m_off), count in zip(FAMILIES, levels):
        names += [f"{family}-q{q}" for q in range(count)]
        families += [family] * count
        ladder.append(np.geomspace(*bpp_range, count) if count > 1 else np.array([np.sqrt(bpp_range[0] * bpp_range[1])]))
        psnr_off += [p_off] * count
        msssim_off += [m_off] * count
    ladder = np.concatenate(ladder)

    shape = (n_images, n_candidates)
    bpp = ladder[None, :] * complexity[:, None] * np.exp(rng.normal(0, 0.05 * noise, shape))
    octaves = np.log2(bpp / complexity[:, None])
    psnr = psnr_at_k[:, None] + psnr_slope[:, None] * octaves + np.array(psnr_off) + rng.normal(0, 0.15 * noise, shape)
    msssim_db = msssim_db_at_k[:, None] + msssim_slope[:, None] * octaves + np.array(msssim_off) + rng.normal(0, 0.15 * noise, shape)
    sse = 3 * pixels[:, None] * 255.0**2 * 10 ** (-psnr / 10)
    return pd.DataFrame({
        "image": np.repeat([f"img{i:05d}" for i in range(n_images)], n_candidates),
        "candidate": np.tile(names, n_images),
        "family": np.tile(families, n_images),
        "bytes": np.maximum(1, np.round(bpp * pixels[:, None] / 8)).astype(np.int64).ravel(),
        "pixels": np.repeat(pixels, n_candidates),
        "sse": sse.ravel(),
        "msssim": np.clip(1 - 10 ** (-msssim_db / 10), 0.0, 1.0).ravel(),
        "width": np.repeat(width, n_candidates),
        "height": np.repeat(height, n_candidates),
        "rate_label": np.tile([f"{b:.3g}" for b in ladder], n_images),
    })
