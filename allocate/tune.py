"""Offline tuning from a cached RD table: budget sweeps against the same-model baseline, and which ladder
models matter at a target budget. Nothing is re-encoded."""

from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd

from allocate.metrics import aggregate_psnr, bits_per_pixel, cap_from_bpp, per_image_psnr, weighted_msssim
from allocate.result import InfeasibleError
from allocate.solve import Objective, Solver, solve_budget
from allocate.table import total_pixels

NAIVE = "naive"
SubsetMode = Literal["auto", "all", "drop-one", "none"]
SUBSET_COLUMNS = ["models", "n_models", "dropped", "status", "psnr", "msssim", "total_bytes", "delta_psnr", "delta_msssim"]


def set_scores(chosen: pd.DataFrame) -> dict:
    """Set-level numbers of a choice of one row per image (decoding_ms when the table has dec_s for all)."""
    pixels = int(chosen["pixels"].sum())
    total_bytes = int(chosen["bytes"].sum())
    has_times = "dec_s" in chosen and chosen["dec_s"].notna().all()
    return {
        "n_images": len(chosen), "total_pixels": pixels, "total_bytes": total_bytes,
        "bpp": bits_per_pixel(total_bytes, pixels), "total_sse": float(chosen["sse"].sum()),
        "psnr": aggregate_psnr(float(chosen["sse"].sum()), pixels), "psnr_mean": float(per_image_psnr(chosen["sse"], chosen["pixels"]).mean()),
        "msssim": weighted_msssim(chosen["msssim"].to_numpy(), chosen["pixels"].to_numpy()),
        "decoding_ms": float(chosen["dec_s"].sum() * 1000) if has_times else np.nan,
    }


def uniform_choices(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The naive allocations: for each candidate that every image has, that candidate for every image."""
    n_images = table["image"].nunique()
    counts = table["candidate"].value_counts()
    complete = counts.index[counts == n_images]
    return {name: rows.sort_values("image") for name, rows in table[table["candidate"].isin(complete)].groupby("candidate")}


def best_uniform(uniform: dict[str, pd.DataFrame], cap: int, objective: Objective) -> tuple[str, pd.DataFrame] | None:
    """The same-model-for-every-image allocation within cap with the best objective (None if none fits)."""
    fits = {name: rows for name, rows in uniform.items() if rows["bytes"].sum() <= cap}
    if not fits:
        return None

    def loss(rows: pd.DataFrame) -> float:
        return rows["sse"].sum() if objective == "sse" else -weighted_msssim(rows["msssim"], rows["pixels"])

    name = min(fits, key=lambda n: loss(fits[n]))
    return name, fits[name]


def budget_grid(bpp_min: float, bpp_max: float, steps: int) -> list[float]:
    """steps budgets evenly spaced from bpp_min to bpp_max, rounded to 6 significant digits."""
    return [float(f"{b:.6g}") for b in np.linspace(bpp_min, bpp_max, steps)]


def sweep(table: pd.DataFrame, bpps: list[float], solvers: list[Solver], objective: Objective = "sse") -> pd.DataFrame:
    """One row per (budget, strategy): each solver and the naive baseline, with set scores or why none fits."""
    pixels = total_pixels(table)
    uniform = uniform_choices(table)
    rows = []
    for bpp in bpps:
        cap = cap_from_bpp(bpp, pixels)
        for solver in solvers:
            base = {"strategy": solver, "target_bpp": bpp, "cap_bytes": cap}
            try:
                a = solve_budget(table, cap, objective, solver)
            except InfeasibleError as e:
                rows.append({**base, "status": "infeasible", "note": str(e)})
                continue
            rows.append({**base, "status": "ok", **set_scores(a.chosen), "gap": a.gap, "wall_s": a.wall_s, "note": ""})
        naive = best_uniform(uniform, cap, objective)
        base = {"strategy": NAIVE, "target_bpp": bpp, "cap_bytes": cap}
        if naive is None:
            rows.append({**base, "status": "infeasible", "note": "no single candidate fits for every image"})
        else:
            rows.append({**base, "status": "ok", **set_scores(naive[1]), "note": naive[0]})
    return pd.DataFrame(rows)


def leaderboard_rows(sweep_table: pd.DataFrame) -> list[dict]:
    """The sweep's feasible rows in the CLIC leaderboard format of eval/ (entry: strategy @ budget)."""
    from eval.leaderboard import leaderboard_row  # eval imports torch: load it only when writing
    from eval.score import Scores

    rows = []
    for r in sweep_table[sweep_table["status"] == "ok"].itertuples(index=False):
        label = f"{r.strategy} ({r.note})" if r.strategy == NAIVE else r.strategy
        scores = Scores(psnr=r.psnr, psnr_mean_per_image=r.psnr_mean, msssim=r.msssim, total_sse=r.total_sse,
                        total_pixels=int(r.total_pixels), total_bytes=int(r.total_bytes), bpp=r.bpp,
                        n_images=int(r.n_images), per_image=pd.DataFrame())
        decoding_ms = None if np.isnan(r.decoding_ms) else float(r.decoding_ms)
        rows.append(leaderboard_row(f"{label} @ {r.target_bpp:g} bpp", scores, decoding_ms, None))
    return rows


def subset_mode(n_models: int, mode: SubsetMode, max_all: int) -> SubsetMode:
    """'auto' resolved: 'all' up to max_all models, else 'drop-one'."""
    if mode == "auto":
        return "all" if n_models <= max_all else "drop-one"
    return mode


def _subsets(models: list[str], mode: str, max_all: int) -> list[tuple[str, ...]]:
    mode = subset_mode(len(models), mode, max_all)
    if mode == "all":
        return [s for k in range(1, len(models) + 1) for s in combinations(models, k)]
    if mode == "drop-one":
        return [tuple(m for m in models if m != dropped) for dropped in models]
    raise ValueError(f"subset mode must be all, drop-one or auto, got {mode!r}")


def ladder_subsets(table: pd.DataFrame, cap: int, mode: SubsetMode = "auto", objective: Objective = "sse",
                   max_all: int = 8) -> pd.DataFrame:
    """The exact allocation at cap with only some of the ladder's models (candidates) available.

    mode 'all' tries every non-empty subset, 'drop-one' the full ladder less one model, 'auto' picks
    'all' up to max_all models. Rows compare with the full ladder (delta_psnr, delta_msssim); subsets
    that miss an image or cannot fit the cap say so in status.
    """
    models = sorted(table["candidate"].unique())
    full = solve_budget(table, cap, objective)
    n_images = table["image"].nunique()
    rows = []
    for subset in _subsets(models, mode, max_all):
        part = table[table["candidate"].isin(subset)]
        row = {"models": " + ".join(subset), "n_models": len(subset),
               "dropped": " + ".join(sorted(set(models) - set(subset)))}
        if part["image"].nunique() < n_images:
            rows.append({**row, "status": "misses images"})
            continue
        try:
            a = solve_budget(part, cap, objective)
        except InfeasibleError:
            rows.append({**row, "status": "over the cap"})
            continue
        rows.append({**row, "status": "ok", "psnr": a.psnr, "msssim": a.msssim, "total_bytes": a.total_bytes,
                     "delta_psnr": a.psnr - full.psnr, "delta_msssim": a.msssim - full.msssim})
    out = pd.DataFrame(rows, columns=SUBSET_COLUMNS).astype({"total_bytes": "Int64"})
    key = "psnr" if objective == "sse" else "msssim"
    return out.sort_values(["n_models", key], ascending=[True, False], na_position="last").reset_index(drop=True)


def best_per_size(subsets: pd.DataFrame, objective: Objective = "sse") -> pd.DataFrame:
    """For each number of models, the subset with the best objective: which models to train first."""
    key = "psnr" if objective == "sse" else "msssim"
    ok = subsets[subsets["status"] == "ok"]
    return ok.loc[ok.groupby("n_models")[key].idxmax()].reset_index(drop=True) if len(ok) else ok
