"""PNG plots for offline tuning: PSNR vs bpp per strategy, and the per-image choice at one budget."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import pandas as pd  # noqa: E402

from allocate.metrics import per_image_psnr  # noqa: E402

BAR_LIMIT = 200  # above this many images, per-image bars become a line
LINE_STYLES = ["o-", "s--", "^:", "x-."]


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_psnr_vs_bpp(sweep_table: pd.DataFrame, path: Path, objective: str = "sse") -> None:
    """Aggregate PSNR (or pixel-weighted MS-SSIM) against achieved bpp, one line per strategy."""
    metric, label = ("psnr", "aggregate PSNR (dB)") if objective == "sse" else ("msssim", "pixel-weighted MS-SSIM")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = sweep_table[sweep_table["status"] == "ok"]
    for i, (strategy, rows) in enumerate(ok.groupby("strategy", sort=False)):  # styles differ: equal lines overlap
        ax.plot(rows["bpp"], rows[metric], LINE_STYLES[i % len(LINE_STYLES)], markersize=4, label=strategy)
    ax.set(xlabel="bpp (whole set)", ylabel=label, title=f"{label} vs rate per strategy")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_chosen(chosen: pd.DataFrame, table: pd.DataFrame, path: Path, title: str) -> None:
    """Which candidate each image got: images on x (by chosen bpp), candidates on y (by mean bytes), colour = family."""
    ladder = table.groupby("candidate")["bytes"].mean().sort_values().index.tolist()
    rank = {name: i for i, name in enumerate(ladder)}
    shown = chosen.assign(bpp=8 * chosen["bytes"] / chosen["pixels"]).sort_values("bpp").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.22 * len(ladder) + 1.5)))
    for family, rows in shown.groupby("family"):
        ax.scatter(rows.index, rows["candidate"].map(rank), s=10, label=family)
    ax.set_yticks(range(len(ladder)), ladder, fontsize=7)
    ax.set(xlabel="image (sorted by chosen bpp)", ylabel="candidate", title=title)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_bytes_per_image(chosen: pd.DataFrame, path: Path, title: str) -> None:
    """Bytes spent on each image, with the image's PSNR on a second axis."""
    shown = chosen.sort_values("bytes", ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 4))
    if len(shown) <= BAR_LIMIT:
        ax.bar(shown.index, shown["bytes"], color="tab:blue")
    else:
        ax.fill_between(shown.index, shown["bytes"], color="tab:blue", step="mid")
    ax.set(xlabel="image (sorted by bytes)", ylabel="bytes", title=title)
    psnr_ax = ax.twinx()
    psnr_ax.plot(shown.index, per_image_psnr(shown["sse"], shown["pixels"]), ".", color="tab:red", markersize=3)
    psnr_ax.set_ylabel("image PSNR (dB)", color="tab:red")
    _save(fig, path)
