"""How much quality a latent of M channels per stride×stride block can hold at best, linearly.

    .venv/bin/python bench/bench_latent_ceiling.py [--train ../shared/datasets/bsds500] [--train-images 200]

A network whose ``g_a`` down-samples by ``stride`` maps each stride×stride×3
block of pixels to M latent values.  The best *linear* map of that shape is the
block's principal-component basis (the Karhunen–Loève transform): keeping its M
strongest components and dropping the rest, with no quantisation at all, gives
the PSNR below.  The basis is fitted on training images (non-overlapping blocks)
and measured on Kodak (aggregate PSNR, one MSE over the set).  A learned
transform is nonlinear and its receptive fields overlap, so this is a guide, not
a bound; the README sets it beside the trained networks' own unquantised PSNR.
Writes ``bench/results/latent_ceiling.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_models import cpu_info
from bench_pipeline import markdown_table
from eval.images import list_images, load_rgb8

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KODAK = ROOT / "data" / "kodak"
CHANNELS = {16: (96, 128, 160, 192, 224, 256, 320), 8: (32, 48, 64, 80, 96, 128)}


def blocks(image: np.ndarray, side: int) -> np.ndarray:
    """The image's whole side×side×3 blocks, one per row (float64)."""
    h, w = image.shape[0] // side * side, image.shape[1] // side * side
    tiles = image[:h, :w].reshape(h // side, side, w // side, side, 3).transpose(0, 2, 1, 3, 4)
    return tiles.reshape(-1, side * side * 3).astype(np.float64)


def ceiling(train: list[Path], test: list[Path], side: int, channels: tuple[int, ...]) -> list[dict]:
    """Aggregate PSNR on ``test`` keeping each count of principal components fitted on ``train``."""
    fit = np.concatenate([blocks(load_rgb8(p), side) for p in train])
    mean = fit.mean(axis=0)
    _, basis = np.linalg.eigh(np.cov((fit - mean).T))
    coefficients = (np.concatenate([blocks(load_rgb8(p), side) for p in test]) - mean) @ basis[:, ::-1]
    dims = side * side * 3
    rows = []
    for m in channels:
        mse = float((coefficients[:, m:] ** 2).sum() / coefficients.size)
        rows.append({"stride": side, "M": m, "share of block": f"{m / dims:.0%}",
                     "PSNR (dB)": round(10 * np.log10(255**2 / mse), 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=ROOT.parent / "shared" / "datasets" / "bsds500")
    parser.add_argument("--train-images", type=int, default=200, help="first N images of --train (sorted)")
    args = parser.parse_args()
    train = list_images(args.train)[: args.train_images]
    test = list_images(KODAK)
    rows = [row for side, channels in CHANNELS.items() for row in ceiling(train, test, side, channels)]
    lines = [
        "# Latent ceiling: linear (PCA) reconstruction from M channels per block",
        "",
        f"`{' '.join(['python bench/bench_latent_ceiling.py', *sys.argv[1:]])}`, "
        f"{time.strftime('%Y-%m-%d')}; basis fitted on {len(train)} images of `{args.train.name}`, "
        f"measured on the {len(test)} Kodak images (aggregate PSNR, no quantisation); {cpu_info()}.",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latent_ceiling.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
