"""One row per training run: how the learned ladder does on Kodak so far.

    python bench/training_progress.py --steps 12345 [--weights models/weights/psnr.safetensors]

Encodes Kodak with the learned ladder and the AVIF ladder through the
pipeline's own cached grid (so the numbers are real file sizes and decoded
pixels), then appends to ``bench/results/training_progress.csv``: per rate
point bpp / aggregate PSNR / MS-SSIM, and the exact 0.15 bpp allocation for
learned-only, AVIF-only and hybrid (learned + AVIF) candidates.  Redraws
``training_progress.png`` (allocated PSNR at 0.15 bpp vs training steps) and
writes ``gap_per_image.csv``: each image's PSNR at 0.15 bpp for both ladders
(interpolated along each ladder), to see where the learned codec loses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import allocate  # noqa: E402
import models.ladder  # noqa: E402
from eval.images import list_images  # noqa: E402
from eval.metrics import aggregate_psnr, bpp, weighted_msssim  # noqa: E402
from pipeline.codecs import ladder_candidates  # noqa: E402
from pipeline.grid import run_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BUDGET_BPP = 0.15


def summary(rows: pd.DataFrame) -> tuple[float, float, float]:
    """Aggregate (bpp, PSNR, MS-SSIM) of a set of per-image rows."""
    pixels = int(rows["pixels"].sum())
    return (
        bpp(int(rows["bytes"].sum()), pixels),
        aggregate_psnr(float(rows["sse"].sum()), pixels),
        weighted_msssim(rows["msssim"].tolist(), rows["pixels"].tolist()),
    )


def allocated_psnr(table: pd.DataFrame) -> float:
    cap = allocate.cap_from_bpp(BUDGET_BPP, int(table.groupby("image")["pixels"].first().sum()))
    return allocate.solve_budget(table, cap).psnr


def progress_row(table: pd.DataFrame, steps: int, note: str) -> dict:
    learned = table[table["family"] == "learned"]
    avif = table[table["family"] == "avif"]
    row: dict = {"date": dt.date.today().isoformat(), "steps": steps, "note": note}
    for name, rows in learned.groupby("candidate", sort=True):
        b, p, m = summary(rows)
        row.update({f"{name} bpp": round(b, 4), f"{name} PSNR": round(p, 3), f"{name} MS-SSIM": round(m, 4)})
    row["learned PSNR @0.15"] = round(allocated_psnr(learned), 3)
    row["AVIF PSNR @0.15"] = round(allocated_psnr(avif), 3)
    row["hybrid PSNR @0.15"] = round(allocated_psnr(pd.concat([learned, avif])), 3)
    return row


def psnr_at_budget(rows: pd.DataFrame) -> float:
    """One image's PSNR at 0.15 bpp, interpolated in log-bpp between its two nearest
    settings (NaN when the ladder does not bracket 0.15 bpp on that image)."""
    rows = rows.assign(rate=[np.log(bpp(b, p)) for b, p in zip(rows["bytes"], rows["pixels"])],
                       psnr=[aggregate_psnr(s, p) for s, p in zip(rows["sse"], rows["pixels"])]).sort_values("rate")
    rate, psnr = rows["rate"].to_numpy(), rows["psnr"].to_numpy()
    target = np.log(BUDGET_BPP)
    return float(np.interp(target, rate, psnr)) if rate[0] <= target <= rate[-1] else float("nan")


def gap_per_image(table: pd.DataFrame) -> pd.DataFrame:
    """Per image: learned and AVIF PSNR at 0.15 bpp (each ladder interpolated) and their difference."""
    rows = []
    for image, cells in table.groupby("image", sort=True):
        learned = psnr_at_budget(cells[cells["family"] == "learned"])
        avif = psnr_at_budget(cells[cells["family"] == "avif"])
        rows.append({"image": image, "learned PSNR @0.15": round(learned, 3), "AVIF PSNR @0.15": round(avif, 3),
                     "learned - AVIF (dB)": round(learned - avif, 3)})
    return pd.DataFrame(rows).sort_values("learned - AVIF (dB)")


def plot(history: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["steps"], history["learned PSNR @0.15"], "o-", label="learned ladder, allocated")
    ax.plot(history["steps"], history["AVIF PSNR @0.15"], "s--", label="AVIF ladder, allocated")
    ax.set(xlabel="training steps", ylabel="Kodak aggregate PSNR at 0.15 bpp (dB)", title="Training progress")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def projection(history: pd.DataFrame, steps_per_hour: float) -> str:
    """Where a log-linear trend of allocated PSNR vs steps meets the AVIF ladder (needs >= 2 runs)."""
    if history["steps"].nunique() < 2:
        return "one run so far: no trend yet"
    slope, intercept = np.polyfit(np.log(history["steps"]), history["learned PSNR @0.15"], 1)
    target = float(history["AVIF PSNR @0.15"].iloc[-1])
    gap = target - float(history["learned PSNR @0.15"].iloc[-1])
    line = (f"trend {slope:+.3f} dB per e-fold of steps (log-linear fit over {len(history)} runs); "
            f"gap to AVIF {gap:.3f} dB")
    if slope <= 0:
        return line + "; the trend does not close it"
    steps, done = float(np.exp((target - intercept) / slope)), int(history["steps"].iloc[-1])
    if steps <= done:
        return line + "; already closed"
    return line + (f"; projected to close at about {steps:,.0f} steps: {(steps - done) / steps_per_hour:,.1f} more"
                   f" hours at {steps_per_hour:,.0f} steps/h beyond the {done:,} done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, required=True, help="training steps behind these weights")
    parser.add_argument("--weights", type=Path, default=None, help="psnr ladder weights (default: the committed ones)")
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--note", default="")
    parser.add_argument("--steps-per-hour", type=float, default=14_760,
                        help="training speed for the projection (default: 4.1 steps/s, measured alone on 2 cores)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.weights is not None:  # evaluate other weights under the ladder's own file name
            shutil.copyfile(args.weights, Path(tmp) / models.ladder.load_ladder("psnr").weights)
            models.ladder.use_folders(weights=Path(tmp))
        candidates = ladder_candidates("learned") + ladder_candidates("avif")
        grid = run_grid(list_images(args.images), candidates, args.cache, args.n_jobs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    row = progress_row(grid.table, args.steps, args.note or f"commit {commit}")
    csv = RESULTS / "training_progress.csv"
    history = pd.concat([pd.read_csv(csv), pd.DataFrame([row])]) if csv.exists() else pd.DataFrame([row])
    RESULTS.mkdir(parents=True, exist_ok=True)
    history.to_csv(csv, index=False)
    plot(history, RESULTS / "training_progress.png")
    gaps = gap_per_image(grid.table)
    gaps.to_csv(RESULTS / "gap_per_image.csv", index=False)
    print(pd.Series(row).to_string())
    print(gaps.to_string(index=False))
    print(projection(history, args.steps_per_hour))


if __name__ == "__main__":
    main()
