"""One row per training run: where the learned ladder stands at CLIC's three targets.

    python bench/training_progress.py --steps 12345 [--weights FILE [--ladder-file TOML]] [--photos DIR]
                                      [--anchor avif]

For Kodak (and ``--photos``, a folder of high-resolution photographs of the kind a
CLIC test set holds), encodes the learned ladder and the classical anchor ladder
(``--anchor``, default ``avif``) through the pipeline's own cached adaptive grid, so
the numbers are real file sizes and decoded pixels, and appends to
``bench/results/training_progress.csv`` the exact allocations' aggregate PSNR at
0.075, 0.15 and 0.3 bpp: learned only, anchor only, and both mixed (hybrid).  Writes
``training_progress.md`` (where the latest run stands, each gap and the CPU hours a
log-linear trend over the runs projects to close it; every run's learned PSNR),
redraws ``training_progress.png`` (learned and anchor PSNR at each target against
training steps) and, for the committed weights, writes ``gap_per_image.csv`` (each
image's PSNR at 0.15 bpp along both ladders).  A network scored again against the same
anchor replaces its row.  An earlier run's weights are scored with
the ladder definition they were committed with (``--ladder-file``, for example from
``git show REV:models/ladders/psnr.toml``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import allocate  # noqa: E402
from common import markdown_table, run_record, write_page  # noqa: E402
import models.ladder  # noqa: E402
from eval.images import list_images  # noqa: E402
from eval.metrics import aggregate_psnr, bpp  # noqa: E402
from pipeline.allocation import Budget  # noqa: E402
from pipeline.codecs import ladder_candidates  # noqa: E402
from pipeline.run import pricing  # noqa: E402
from pipeline.search import search_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGETS = (0.075, 0.15, 0.3)  # bpp, CLIC's image-track targets since 2021
GAP_BPP = 0.15  # the target of gap_per_image.csv
ROLES = ("learned", "anchor", "hybrid")


def allocated_psnr(table: pd.DataFrame, target_bpp: float) -> float:
    """The aggregate PSNR of the exact allocation at ``target_bpp`` (NaN when no allocation fits)."""
    try:
        return allocate.solve_budget(table, Budget(target_bpp).cap(table)).psnr
    except allocate.InfeasibleError:
        return float("nan")


def encoded_table(images: Path, candidates: list[str], cache: Path, n_jobs: int) -> pd.DataFrame:
    """The exact adaptive grid of ``candidates`` for the three targets (cached cells cost nothing):
    progress is read in hundredths of a dB, so no cell is skipped on a prediction."""
    targets = pricing(tuple(Budget(t) for t in TARGETS), 0, "sse")
    return search_grid(list_images(images), candidates, cache, n_jobs, targets, with_msssim=False, tolerance=None).table


def set_columns(name: str, tables: dict[str, pd.DataFrame]) -> dict:
    """One set's columns of a progress row: each role's allocated PSNR at each target."""
    return {f"{name} {role} @{t:g}": round(allocated_psnr(tables[role], t), 3) for t in TARGETS for role in ROLES}


def psnr_at_budget(rows: pd.DataFrame) -> float:
    """One image's PSNR at ``GAP_BPP``, interpolated in log-bpp between its two nearest
    settings (NaN when the ladder does not bracket it on that image)."""
    rows = rows.assign(rate=[np.log(bpp(b, p)) for b, p in zip(rows["bytes"], rows["pixels"])],
                       psnr=[aggregate_psnr(s, p) for s, p in zip(rows["sse"], rows["pixels"])]).sort_values("rate")
    rate, psnr = rows["rate"].to_numpy(), rows["psnr"].to_numpy()
    target = np.log(GAP_BPP)
    return float(np.interp(target, rate, psnr)) if rate[0] <= target <= rate[-1] else float("nan")


def gap_per_image(name: str, learned: pd.DataFrame, anchor: pd.DataFrame) -> pd.DataFrame:
    """Per image: learned and anchor PSNR at ``GAP_BPP`` (each ladder interpolated) and their difference."""
    rows = []
    for image in sorted(set(learned["image"])):
        mine = psnr_at_budget(learned[learned["image"] == image])
        theirs = psnr_at_budget(anchor[anchor["image"] == image])
        rows.append({"set": name, "image": image, f"learned PSNR @{GAP_BPP:g}": round(mine, 3),
                     f"anchor PSNR @{GAP_BPP:g}": round(theirs, 3), "learned - anchor (dB)": round(mine - theirs, 3)})
    return pd.DataFrame(rows).sort_values("learned - anchor (dB)")


def sets_of(history: pd.DataFrame) -> list[str]:
    """The image sets that have columns in the progress file (kodak first)."""
    found = {c.split(" ")[0] for c in history.columns if c.endswith(f"learned @{TARGETS[0]:g}")}
    return sorted(found, key=lambda name: (name != "kodak", name))


def kept_runs(history: pd.DataFrame, column: str) -> pd.DataFrame:
    """The kept runs with ``column``, one row per network (its latest scoring)."""
    return history[history["kept"]].dropna(subset=[column]).drop_duplicates("steps", keep="last")


def plot(history: pd.DataFrame, path: Path) -> None:
    """Per set: the kept runs' learned PSNR at each target against steps (studies as crosses)
    and the latest anchor's PSNR as a level line."""
    sets = sets_of(history)
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for t, colour in zip(TARGETS, ("C0", "C1", "C2")):
            learned, anchor = f"{name} learned @{t:g}", f"{name} anchor @{t:g}"
            kept, studies = kept_runs(history, learned), history[~history["kept"]].dropna(subset=[learned])
            ax.plot(kept["steps"], kept[learned], "o-", color=colour, label=f"learned @{t:g} bpp")
            ax.plot(studies["steps"], studies[learned], "x", color=colour, label=f"studies @{t:g} bpp")
            ax.axhline(kept[anchor].iloc[-1], ls="--", color=colour, alpha=0.6,
                       label=f"{kept['anchor'].iloc[-1]} @{t:g} bpp")
        ax.set(xlabel="training steps", ylabel="aggregate PSNR, exact allocation (dB)", title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def projection(history: pd.DataFrame, name: str, target: float, steps_per_hour: float) -> dict:
    """Where one set and target stand in the latest kept run, and where a log-linear trend of
    the kept runs' learned PSNR against steps meets the anchor's latest value (needs >= 2)."""
    learned, anchor = f"{name} learned @{target:g}", f"{name} anchor @{target:g}"
    runs = kept_runs(history.dropna(subset=[anchor]), learned)
    last = runs.iloc[-1]
    row = {"set": name, "target bpp": f"{target:g}", "learned dB": last[learned], "anchor dB": last[anchor],
           "gap dB": round(last[anchor] - last[learned], 3), "runs": len(runs), "dB per e-fold of steps": "",
           "CPU hours to close": ""}
    if runs["steps"].nunique() < 2:
        return row
    slope, intercept = np.polyfit(np.log(runs["steps"]), runs[learned], 1)
    row["dB per e-fold of steps"] = round(slope, 3)
    if row["gap dB"] <= 0:
        row["CPU hours to close"] = "closed"
    elif slope <= 0:
        row["CPU hours to close"] = "the trend does not close it"
    else:
        steps = float(np.exp((last[anchor] - intercept) / slope))
        row["CPU hours to close"] = f"{(steps - last['steps']) / steps_per_hour:,.0f} (at {steps:,.0f} steps)"
    return row


def page(history: pd.DataFrame, sets: list[str], steps_per_hour: float, started: float) -> list[str]:
    """The results page: where the latest run stands and the trend, then every run's learned PSNR."""
    runs = history[["date", "steps", "kept", "anchor"] + [f"{name} learned @{t:g}" for name in sets_of(history) for t in TARGETS]]
    return [
        "# Training progress: the learned ladder against the anchor at CLIC's targets", "",
        run_record("training_progress.py", None, started, "aggregate PSNR of exact allocations on real files"), "",
        f"The latest kept run (anchor `{history.loc[history['kept'], 'anchor'].iloc[-1]}`), and the log-linear trend of the learned "
        f"PSNR against training steps over the kept runs with this set's columns, at {steps_per_hour:,.0f} steps "
        "per CPU hour (`--steps-per-hour`); studies (weights not kept) are in the table below only:", "",
        markdown_table(pd.DataFrame([projection(history, name, t, steps_per_hour) for name in sets for t in TARGETS]), ".3f"),
        "Every run (learned ladder alone, dB; `training_progress.csv` has the anchor and hybrid columns and each "
        "run's note):", "",
        markdown_table(runs.fillna(""), ".3f"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, required=True, help="training steps behind these weights")
    parser.add_argument("--weights", type=Path, default=None, help="psnr ladder weights (default: the committed ones)")
    parser.add_argument("--ladder-file", type=Path, default=None,
                        help="the psnr ladder definition that goes with --weights (default: the committed one)")
    parser.add_argument("--photos", type=Path, help="also a folder of high-resolution photographs (validation only)")
    parser.add_argument("--anchor", default="avif", help="the classical ladder to compare with")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--note", default="")
    parser.add_argument("--study", action="store_true",
                        help="weights that were not kept (a study): a row of its own, left out of the trend")
    parser.add_argument("--steps-per-hour", type=float, default=3_600,
                        help="training speed for the projection (default: 1.0 step/s, 256² crops × 4, alone on "
                             "2 AMD EPYC cores without AVX-512)")
    args = parser.parse_args()
    started = time.time()
    sets = {"kodak": ROOT / "data" / "kodak"} | ({args.photos.name: args.photos} if args.photos else {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    row: dict = {"date": dt.date.today().isoformat(), "steps": args.steps, "kept": not args.study,
                 "note": args.note or f"commit {commit}",
                 "anchor": args.anchor}
    gaps = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.ladder_file is not None:  # another definition, under the ladder's own file name
            shutil.copyfile(args.ladder_file, Path(tmp) / "psnr.toml")
            models.ladder.use_folders(ladders=Path(tmp))
        if args.weights is not None:  # evaluate other weights under the ladder's own file name
            shutil.copyfile(args.weights, Path(tmp) / models.ladder.load_ladder("psnr").weights)
            models.ladder.use_folders(weights=Path(tmp))
        mine, theirs = ladder_candidates("learned"), ladder_candidates(args.anchor)
        for name, folder in sets.items():
            tables = {role: encoded_table(folder, candidates, args.cache, args.n_jobs)
                      for role, candidates in zip(ROLES, (mine, theirs, mine + theirs))}
            row |= set_columns(name, tables)
            gaps.append(gap_per_image(name, tables["learned"], tables["anchor"]))
    csv = RESULTS / "training_progress.csv"
    history = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["steps", "anchor"])
    again = (history["steps"] == args.steps) & (history["anchor"] == args.anchor)  # the same network scored again
    history = pd.concat([history[~again], pd.DataFrame([row])])
    history = history.sort_values("steps", kind="stable")  # an earlier run scored now goes in its place
    history["kept"] = history["kept"].astype("boolean").fillna(True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    history.to_csv(csv, index=False)
    plot(history, RESULTS / "training_progress.png")
    if args.weights is None:  # the per-image gaps of the committed weights only
        pd.concat(gaps).to_csv(RESULTS / "gap_per_image.csv", index=False)
    write_page("training_progress.md", page(history, list(sets), args.steps_per_hour, started))


if __name__ == "__main__":
    main()
