"""Compare entries: Bjøntegaard deltas between RD curves, one plot, a table at each target.

Inputs are RD tables (``rd.csv``: one curve per codec family, each candidate's aggregate
point over the set) or leaderboard CSVs (one curve per file: its rows' bpp and PSNR).
Every curve keeps its Pareto points (no point with more bits and less PSNR).  The first
curve is the anchor unless ``anchor`` names another; every other curve gets its
BD-rate and BD-PSNR against it (``eval.bjontegaard``, cubic and piecewise-cubic fits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from allocate import RD_COLUMNS
from eval.bjontegaard import METHODS, bd_psnr, bd_rate

from .errors import PipelineError
from .plot import candidate_curves, save_png

LEADERBOARD = ("Entry", "bpp", "PSNR")


def pareto(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats (fewer or equal bits and more PSNR), by bpp."""
    points = points.sort_values(["bpp", "psnr"], ascending=[True, False])
    return points[points["psnr"] > points["psnr"].cummax().shift(fill_value=-np.inf)].reset_index(drop=True)


def read_curves(path: Path) -> dict[str, pd.DataFrame]:
    """Name -> (bpp, psnr) curve of one input file; PipelineError (one line) if it is neither kind."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{path}: not a readable CSV ({exc})") from None
    if set(RD_COLUMNS) <= set(frame.columns):
        curves = candidate_curves(frame)
        return {f"{path.parent.name}/{family}": pareto(c[["bpp", "psnr"]]) for family, c in curves.groupby("family")}
    if set(LEADERBOARD) <= set(frame.columns):
        return {path.stem: pareto(frame.rename(columns={"PSNR": "psnr"})[["bpp", "psnr"]])}
    raise PipelineError(f"{path}: neither an RD table ({', '.join(RD_COLUMNS)}) nor a leaderboard CSV")


def deltas(curves: dict[str, pd.DataFrame], anchor: str) -> pd.DataFrame:
    """BD-rate (%) and BD-PSNR (dB) of every curve against ``anchor``, both fits; empty where
    a curve has fewer than 4 points or no overlap."""
    base = curves[anchor]
    rows = []
    for name, curve in curves.items():
        if name == anchor:
            continue
        row: dict[str, object] = {"entry": name, "points": len(curve)}
        for method in METHODS:
            for label, delta in (("BD-rate %", bd_rate), ("BD-PSNR dB", bd_psnr)):
                try:
                    row[f"{label} ({method})"] = delta(base["bpp"], base["psnr"], curve["bpp"], curve["psnr"], method)
                except ValueError:
                    row[f"{label} ({method})"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def at_targets(curves: dict[str, pd.DataFrame], targets: list[float]) -> pd.DataFrame:
    """Each curve's PSNR at each bpp target, linear in log bpp between its points (empty outside them)."""
    rows = []
    for name, curve in curves.items():
        row: dict[str, object] = {"entry": name}
        for target in targets:
            inside = curve["bpp"].min() <= target <= curve["bpp"].max()
            value = np.interp(np.log(target), np.log(curve["bpp"]), curve["psnr"]) if inside else np.nan
            row[f"PSNR @ {target:g} bpp"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def plot_curves(curves: dict[str, pd.DataFrame], path: Path) -> None:
    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.subplots()
    for name, curve in curves.items():
        ax.plot(curve["bpp"], curve["psnr"], marker=".", label=name)
    ax.set(xscale="log", xlabel="bits per pixel (aggregate)", ylabel="PSNR [dB] (aggregate)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def compare(paths: list[Path], anchor: str | None, targets: list[float], plot: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Bjøntegaard deltas against the anchor, PSNR at each target) of the inputs' curves; writes the plot."""
    curves = {name: curve for path in paths for name, curve in read_curves(path).items()}
    if len(curves) < 2:
        raise PipelineError(f"need at least two curves to compare, found {len(curves)}: {', '.join(curves)}")
    if anchor is not None and anchor not in curves:
        matches = [name for name in curves if name.endswith(f"/{anchor}")]
        if len(matches) != 1:
            raise PipelineError(f"anchor {anchor!r} is none of the curves: {', '.join(curves)}")
        anchor = matches[0]
    plot_curves(curves, plot)
    return deltas(curves, anchor or next(iter(curves))), at_targets(curves, targets)
