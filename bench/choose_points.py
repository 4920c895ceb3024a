"""Choose a ladder's rate points by measurement: the 5 that allocate best.

    python bench/choose_points.py [--ladder psnr] [--rates 0 0.5 1 1.5 2 2.5 3 3.5 4] [--keep 5] [--transparent]

Codes Kodak at every candidate rate of the ladder's network (real files, the
pipeline's cached grid), then solves the exact allocation for every subset of
``--keep`` rates that contains the lowest and the highest candidate (so the
ladder keeps its range) and ranks them: by aggregate PSNR at 0.15 bpp (MS-SSIM
for an MS-SSIM ladder), or with ``--transparent`` by the fewest bytes reaching
PSNR 40 dB and MS-SSIM 0.993 (the transparent track).  Writes
``bench/results/points_<ladder>.md``.  ``--write`` puts the best subset (or
``--write R R R R R``, rates among the candidates) into the ladder file's
``[[points]]``, each with its measured ``kodak_bpp``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import tempfile
from pathlib import Path

import pandas as pd

import allocate
from eval.metrics import aggregate_psnr, bpp, weighted_msssim
import models.ladder
from eval.images import list_images
from pipeline.allocation import Budget, Target, Transparent, solve
from pipeline.grid import run_grid

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def ladder_with_rates(name: str, rates: list[float], folder: Path) -> models.ladder.Ladder:
    """A copy of ladder ``name`` offering ``rates``, installed as the ladder folder (here and in workers)."""
    text = models.ladder.ladder_file(name).read_text()
    head = text[: text.index("[[points]]")]
    (folder / f"{name}.toml").write_text(head + "".join(f"[[points]]\nrate = {r}\n\n" for r in rates))
    models.ladder.use_folders(ladders=folder)
    return models.ladder.load_ladder(name)


def rank_subsets(table: pd.DataFrame, rate_of: dict[str, float], keep: int, metric: str,
                 target: Target) -> pd.DataFrame:
    """Every subset of ``keep`` rates (lowest and highest kept), best first: highest
    quality within a ``Budget``, or fewest bytes reaching a ``Transparent`` target."""
    names = sorted(rate_of, key=rate_of.get)
    rows = []
    for middle in itertools.combinations(names[1:-1], keep - 2):
        subset = [names[0], *middle, names[-1]]
        rd = table[table["candidate"].isin(subset)]
        row = {"rates": " ".join(f"{rate_of[n]:g}" for n in subset), "psnr": float("nan"), "msssim": float("nan"),
               "bytes": float("nan")}
        try:
            a = solve(rd, target, "sse" if metric == "mse" else "msssim", "exact")
            row.update(psnr=a.psnr, msssim=a.msssim, bytes=a.total_bytes)
        except allocate.InfeasibleError:
            pass
        rows.append(row)
    if isinstance(target, Transparent):
        return pd.DataFrame(rows).sort_values("bytes", na_position="last")
    return pd.DataFrame(rows).sort_values("psnr" if metric == "mse" else "msssim", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4])
    parser.add_argument("--keep", type=int, default=5)
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--transparent", action="store_true",
                        help=f"Rank by fewest bytes reaching ({Transparent().describe()}) instead of quality "
                             f"within {Budget().describe()}.")
    parser.add_argument("--write", type=float, nargs="*", default=None,
                        help="Write these rates (none given: the best subset) into the ladder file.")
    args = parser.parse_args()
    ladder_path = models.ladder.ladder_file(args.ladder)
    with tempfile.TemporaryDirectory() as tmp:
        ladder = ladder_with_rates(args.ladder, sorted(set(args.rates)), Path(tmp))
        rate_of = {e.name: e.rate for e in ladder.entries}
        table = run_grid(list_images(args.images), list(rate_of), args.cache, args.n_jobs).table
    per_rate = table.groupby("candidate").agg(bytes=("bytes", "sum"), pixels=("pixels", "sum"), sse=("sse", "sum"))
    per_rate["msssim"] = table.groupby("candidate").apply(lambda g: weighted_msssim(g["msssim"], g["pixels"]))
    bpp_at = {rate_of[name]: bpp(int(r.bytes), int(r.pixels)) for name, r in per_rate.iterrows()}
    target = Transparent() if args.transparent else Budget()
    ranked = rank_subsets(table, rate_of, args.keep, ladder.metric, target)
    goal = f"the fewest bytes reaching {target.describe()}" if args.transparent else f"allocation within {target.describe()}"
    lines = [f"# Rate points of the `{args.ladder}` ladder, chosen by {goal}", "",
             f"`python bench/choose_points.py --ladder {args.ladder} --rates {' '.join(f'{r:g}' for r in args.rates)}"
             f" --keep {args.keep}{' --transparent' if args.transparent else ''}`, {dt.date.today().isoformat()}, "
             f"{len(table['image'].unique())} images.", "",
             "| rate | bpp | aggregate PSNR (dB) | MS-SSIM |", "|---|---|---|---|"]
    for name in sorted(rate_of, key=rate_of.get):
        r = per_rate.loc[name]
        lines.append(f"| {rate_of[name]:g} | {bpp_at[rate_of[name]]:.4f} | "
                     f"{aggregate_psnr(float(r.sse), int(r.pixels)):.3f} | {r.msssim:.4f} |")
    lines += ["", f"Best subsets of {args.keep} for {goal} (lowest and highest rate always kept):", "",
              "| rates | PSNR | MS-SSIM | bytes |", "|---|---|---|---|"]
    lines += [f"| {r.rates} | {r.psnr:.3f} | {r.msssim:.4f} | {r.bytes:.0f} |" if r.bytes == r.bytes
              else f"| {r.rates} | infeasible | | |" for r in ranked.head(8).itertuples()]
    if ranked["psnr"].isna().all():
        lines += ["", "No subset reaches the targets: the ladder's highest rate is below them (train higher λ rows)."
                  if args.transparent else
                  f"No subset fits the {target.describe()}: the ladder's lowest rate is above it (train lower λ rows)."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"points_{args.ladder}.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    if args.write is not None:
        if not args.write and ranked["psnr"].isna().all():
            raise SystemExit("--write: no subset reaches the target; name the rates to write (--write R R R R R)")
        chosen = args.write or [float(r) for r in ranked.iloc[0]["rates"].split()]
        missing = [r for r in chosen if r not in bpp_at]
        if missing:
            raise SystemExit(f"--write: rate {missing[0]:g} was not measured (--rates {' '.join(map(str, args.rates))})")
        models.ladder.rewrite_points(ladder_path, [(r, bpp_at[r]) for r in sorted(chosen)])
        print(f"{ladder_path}: points {' '.join(f'{r:g}' for r in sorted(chosen))} written with their Kodak bpp")


if __name__ == "__main__":
    main()
