"""RD plot: every family's "same setting for all images" curve and the chosen points."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from eval import atomic
from eval.metrics import aggregate_psnr, bpp


def set_point(rows: pd.DataFrame) -> pd.Series:
    """Aggregate bpp and PSNR (one MSE over all pixels) of a set of cells, one per image."""
    pixels = int(rows["pixels"].sum())
    return pd.Series(
        {"bpp": bpp(int(rows["bytes"].sum()), pixels), "psnr": aggregate_psnr(rows["sse"].sum(), pixels)}
    )


def candidate_curves(table: pd.DataFrame) -> pd.DataFrame:
    """One aggregate point per candidate encoded for every image (family, candidate, bpp, psnr), by
    family then bpp; the adaptive grid's refinements, encoded for some images only, have none."""
    everywhere = table.groupby("candidate")["image"].transform("size") == table["image"].nunique()
    points = table[everywhere].groupby(["family", "candidate"])[["bytes", "pixels", "sse"]].apply(set_point)
    return points.reset_index().sort_values(["family", "bpp"], ignore_index=True)


def plot_rd(table: pd.DataFrame, chosen: pd.DataFrame, path: Path, title: str) -> None:
    """Write a PNG: per-family aggregate curves, each chosen cell, and the submission's point."""
    fig = Figure(figsize=(8, 5.5), dpi=110)  # no pyplot: no global state, Agg canvas
    ax = fig.subplots()
    for family, curve in candidate_curves(table).groupby("family"):
        ax.plot(curve["bpp"], curve["psnr"], marker=".", label=f"{family} (same setting everywhere)")
    per_image = chosen.assign(bpp=8 * chosen["bytes"] / chosen["pixels"])
    per_image["psnr"] = [aggregate_psnr(s, p) for s, p in zip(per_image["sse"], per_image["pixels"])]
    ax.scatter(per_image["bpp"], per_image["psnr"], s=12, c="grey", alpha=0.6, label="chosen cells (per image)")
    total = set_point(chosen)
    ax.scatter([total["bpp"]], [total["psnr"]], s=160, marker="*", c="red", zorder=5,
               label=f"submission: {total['bpp']:.4f} bpp, {total['psnr']:.2f} dB")
    ax.set(xscale="log", xlabel="bits per pixel (aggregate)", ylabel="PSNR [dB] (aggregate)", title=title)
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def save_png(fig: Figure, path: Path) -> None:
    """Lay the figure out and write it as a PNG, atomically."""
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    atomic.write_bytes(path, buffer.getvalue())
