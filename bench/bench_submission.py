"""`make submission` and `make submission-2021` timed from an empty cache, and the
leaderboard rows they write; the adaptive grid against the full grid, side by side.

    .venv/bin/python bench/bench_submission.py [--images data/kodak] [--out DIR]
                                               [--recipes submission submission-2021] [--cache DIR]
                                               [--full-grid-too]

Runs the ``clic submission`` commands of the Makefile's ``submission`` recipe, then of
its ``submission-2021`` recipe (read from it), into ``--out`` (default: a fresh
temporary folder) with one fresh cache there (or ``--cache``, whose finished cells are
reused), one after the other as ``make submission submission-2021`` does, and
records each run's wall time, stage by stage, and the leaderboard rows it wrote.  The
README's results tables and run time come from here.  ``--full-grid-too`` first runs the
``submission`` recipe again with ``--full-grid`` into a folder and cache of its own, and
compares: time per run and stage, the encode time of the cells each grid encoded against
the floor any certified search must encode, rows and their differences, and the time
projected for an 840-megapixel test set (CLIC 2019's low-rate one) on 2, 16 and 64 cores; and
replays the search, exact and within its tolerance, over the full grid's cells
(``replay_search.py``).  Writes one page per recipe, ``bench/results/submission.md`` and
``submission_2021.md``, and with ``--full-grid-too`` ``bench/results/grid.md`` and
``search_replay.md``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import replay_search
from common import makefile_commands, markdown_table, run_record, write_page
from eval.images import list_images, load_rgb8
from pipeline.allocation import priced_quantities, prices
from pipeline.search import families

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["Entry", "PSNR", "PSNR (per-image mean)", "MS-SSIM", "Images Size (Bytes)", "bpp", "Decoding Time (ms)",
           "Decoder Size (Bytes)"]


RECIPES = {"submission": "submission.md", "submission-2021": "submission_2021.md"}  # recipe -> page
STAGES = ["encode", "allocate", "package", "verify", "report"]
TEST_SET_MP = 840  # CLIC 2019 low-rate test set, megapixels
CORES = (2, 16, 64)


def run_recipe(images: Path, out: Path, cache: Path, recipe: str, extra: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run a recipe's commands (with ``extra`` options); return each run's wall and stage
    seconds, and the leaderboard rows the recipe added."""
    seen = set(pd.read_csv(out / "leaderboard.csv")["Entry"]) if (out / "leaderboard.csv").is_file() else set()
    rows = []
    for command in makefile_commands(images, out, recipe):
        begin = time.perf_counter()
        done = subprocess.run([*command, "--cache", str(cache), *extra], check=True, cwd=ROOT, capture_output=True, text=True)
        stages = dict(re.findall(r"(\w+) ([\d.]+) s", done.stdout.rsplit("\ntime: ", 1)[1]))
        rows.append({"run": command[command.index("--out") + 1].rsplit("/", 1)[-1],
                     "wall s": time.perf_counter() - begin, **{k: float(stages.get(k, 0)) for k in STAGES}})
    board = pd.read_csv(out / "leaderboard.csv")
    board = board[~board["Entry"].isin(seen)][COLUMNS]
    return pd.DataFrame(rows), board.assign(**{"Decoding Time (ms)": board["Decoding Time (ms)"].round().astype(int)})


def projection(times: pd.DataFrame, megapixels: float) -> dict[str, float]:
    """Seconds for a TEST_SET_MP test set, per core count, scaled from these runs' stages: the
    encode grid and (on dask) the decoding spread over all cores; the rest as measured here,
    scaled by pixels."""
    scale = TEST_SET_MP / megapixels
    serial = times[["allocate", "package", "report"]].to_numpy().sum() * scale
    encode, verify = times["encode"].sum() * scale * 2, times["verify"].sum() * scale  # encode: 2 workers here
    out = {}
    for cores in CORES:
        out[f"local, {cores} cores"] = serial + encode / cores + verify
        out[f"dask, {cores} cores"] = serial + encode / cores + verify / max(cores // 2, 1)
    return out


def run_prices(table: pd.DataFrame, folder: Path) -> np.ndarray:
    """The Lagrangian weights (``pipeline.allocation.PRICED``) of the allocation a run folder's
    manifest asked for, on ``table`` (a transparent MS-SSIM target only if the table measured it)."""
    _, target, objective = replay_search.requested(folder, with_msssim=table["msssim"].notna().all())
    return prices(table, target, objective).weights


def bracketed(table: pd.DataFrame, weights: np.ndarray) -> set[tuple[str, str]]:
    """Per image and family, the family's cheapest setting at the Lagrangian ``weights`` and the
    settings beside it: what a search proving its choice by convexity encodes where every family
    competes (one too far from the image's cheapest cell may be ruled out with fewer)."""
    cost = dict(zip(zip(table["image"], table["candidate"]), priced_quantities(table) @ weights))
    cells = set()
    for family in families(list(dict.fromkeys(table["candidate"]))):
        for image in set(table["image"]):
            cells |= beside(image, family, int(np.argmin([cost[image, name] for name in family])))
    return cells


def beside(image: str, family: list[str], k: int) -> set[tuple[str, str]]:
    """The cells of ``image`` at the family's setting ``k`` and the settings next to it."""
    return {(image, name) for name in family[max(k - 1, 0):k + 2]}


def encode_costs(full_out: Path, out: Path, runs: list[str]) -> pd.DataFrame:
    """Encode CPU-seconds of each run's cells (as the full-grid run timed them): every cell of the
    full grid; those the adaptive search encoded; those the allocation chose; a floor for any
    search that proves its choice by convexity: the chosen cells with the settings beside them
    in their family, and of every other family on every image at least its cheapest cell
    (nothing is known of a family never tried); and every family bracketed at its own best
    (:func:`bracketed`).  The total counts a cell shared by runs once."""
    kinds = ("full grid", "adaptive", "chosen", "floor", "bracketed")
    union: dict[str, dict] = {kind: {} for kind in kinds}
    rows = []
    for run in runs:
        full, adaptive = pd.read_csv(full_out / run / "rd.csv"), pd.read_csv(out / run / "rd.csv")
        cost = dict(zip(zip(full["image"], full["candidate"]), full["enc_s"]))
        chosen = dict(pd.read_csv(out / run / "per_image.csv")[["image", "candidate"]].to_numpy())
        floor = set()
        for family in families(list(dict.fromkeys(full["candidate"]))):
            for image in set(full["image"]):
                if chosen[image] in family:
                    floor |= beside(image, family, family.index(chosen[image]))
                else:
                    floor.add(min(((image, name) for name in family), key=cost.__getitem__))
        cells = zip(kinds, (cost, zip(adaptive["image"], adaptive["candidate"]), chosen.items(), floor,
                            bracketed(full, run_prices(full, full_out / run))))
        row = {"run": run}
        for kind, these in cells:
            these = {cell: cost[cell] for cell in these}
            union[kind] |= these
            row[f"{kind} CPU-s"] = sum(these.values())
        rows.append(row)
    rows.append({"run": "total", **{f"{kind} CPU-s": sum(union[kind].values()) for kind in kinds}})
    return pd.DataFrame(rows)


def compare_page(argv, started, images_text: str, megapixels: float, full, adaptive, costs: pd.DataFrame) -> list[str]:
    """grid.md: the full grid and the adaptive one, run by run and stage by stage, and their rows."""
    (full_times, full_rows), (times, rows) = full, adaptive
    side = pd.DataFrame({"run": times["run"], "full grid s": full_times["wall s"], "adaptive s": times["wall s"]})
    side["speed-up"] = side["full grid s"] / side["adaptive s"]
    total = pd.DataFrame([{"run": "total", "full grid s": full_times["wall s"].sum(), "adaptive s": times["wall s"].sum(),
                           "speed-up": full_times["wall s"].sum() / times["wall s"].sum()}])
    stages = pd.DataFrame({"stage": STAGES, "full grid s": full_times[STAGES].sum().to_numpy(),
                           "adaptive s": times[STAGES].sum().to_numpy()})
    merged = full_rows.merge(rows, on="Entry", suffixes=(" full", " adaptive"))
    diff = pd.DataFrame({"Entry": merged["Entry"],
                         "PSNR full": merged["PSNR full"], "PSNR adaptive": merged["PSNR adaptive"],
                         "Δ PSNR dB": merged["PSNR adaptive"] - merged["PSNR full"],
                         "Δ MS-SSIM": merged["MS-SSIM adaptive"] - merged["MS-SSIM full"],
                         "bytes full": merged["Images Size (Bytes) full"],
                         "bytes adaptive": merged["Images Size (Bytes) adaptive"]})
    rest = times["wall s"].sum() - times["encode"].sum()  # everything but the encode stage
    floor, both = rest + costs["floor CPU-s"].iloc[-1] / 2, rest + costs["bracketed CPU-s"].iloc[-1] / 2
    projected = pd.DataFrame([{"where": k, "full grid h": v / 3600, "adaptive h": a / 3600}
                              for (k, v), a in zip(projection(full_times, megapixels).items(),
                                                   projection(times, megapixels).values())])
    return [
        "# `make submission`: the adaptive grid against the full grid", "",
        run_record("bench_submission.py", argv, started, images_text), "",
        "Both from an empty cache of their own, one after the other, on the same machine: the `submission` "
        "recipe as it is (the adaptive search, `pipeline/search.py`) and with `--full-grid` on every command.", "",
        markdown_table(pd.concat([side, total], ignore_index=True), ".2f"), "",
        "Stage by stage (seconds, summed over the four runs; `encode` includes the search's allocations):", "",
        markdown_table(stages, ".1f"), "",
        "Encode CPU-seconds of the cells, as the full-grid run timed each one (MS-SSIM and the search's "
        "allocations not included):", "",
        markdown_table(costs, ".0f"), "",
        f"Where the limit lies: besides encoding, the adaptive runs spent {rest:.0f} s (allocation, packaging, "
        f"verification, reports, start-up).  Encoding only the floor's cells, spread perfectly over the 2 "
        f"workers, with no MS-SSIM, would take {floor:.0f} s in all: a {full_times['wall s'].sum() / floor:.2f}× "
        f"speed-up over the full grid at best; the bracketed cells, {both:.0f} s "
        f"({full_times['wall s'].sum() / both:.2f}×).", "",
        "Leaderboard rows of both, and their differences:", "",
        markdown_table(diff, ".6g"), "",
        f"Projected for a {TEST_SET_MP}-megapixel test set (hours), scaled by pixels from these stages: the encode "
        "grid spread over every core (it runs 2 workers here), decoding in one process locally and over half the "
        "cores on dask, allocation, packaging and reports as measured.  The adaptive grid's share of cells is "
        "assumed to stay what it is on this set.", "",
        markdown_table(projected, ".2f"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one); its cache must be empty")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--cache", type=Path, help="cache folder (default: a fresh one in the output folder)")
    parser.add_argument("--full-grid-too", action="store_true", help="also run `submission` with --full-grid; write grid.md")
    args = parser.parse_args(argv)
    paths = list_images(args.images)
    megapixels = sum(load_rgb8(p).shape[0] * load_rgb8(p).shape[1] for p in paths) / 1e6
    images = f"{args.images.name}, {len(paths)} images"
    images_dir = args.images.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "out"
        cache = args.cache.resolve() if args.cache else out / "cache"
        start = "a fresh cache" if args.cache is None else f"the cache `{args.cache}` (its finished cells reused)"
        full = None
        if args.full_grid_too:
            started = time.time()
            full = run_recipe(images_dir, out.parent / "full_grid", out.parent / "full_grid" / "cache", "submission", ["--full-grid"])
        for n, recipe in enumerate(args.recipes):
            recipe_started = time.time()
            if n:
                start = f"after `make {args.recipes[n - 1]}`, on its cache"
            times, board = run_recipe(images_dir, out, cache, recipe, [])
            write_page(RECIPES[recipe], [
                f"# `make {recipe}` from {start}", "",
                run_record("bench_submission.py", argv, recipe_started, images),
                "", f"Total: {times['wall s'].sum():.0f} s.", "", markdown_table(times, ".0f"), "",
                "Leaderboard rows (`out/leaderboard.csv`):", "", markdown_table(board, ".6g"),
            ])
            if full is not None and recipe == "submission":
                costs = encode_costs(out.parent / "full_grid", out, list(times["run"]))
                write_page("grid.md", compare_page(argv, started, images, megapixels, full, (times, board), costs))
                replay_search.main(["--full", str(out.parent / "full_grid"), "--images", str(images_dir)])


if __name__ == "__main__":
    main()
