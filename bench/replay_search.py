"""The adaptive search replayed over a full grid's cells: what it would encode, without encoding.

    .venv/bin/python bench/replay_search.py --full DIR [--cache DIR] [--images data/kodak]
                                            [--tolerance exact 0.01 ...]

``--full`` is a folder of the ``submission`` recipe's runs made with ``--full-grid``
(``bench_submission.py --full-grid-too`` leaves one, ``full_grid/``, beside its output, with
its cache in ``full_grid/cache``).  Each run is replayed in the recipe's order, on one scratch
cache shared as the recipe shares its cache: ``pipeline.search.search_grid`` with its targets
(read from the run's manifest) and, instead of an encoder, a copy of the full grid's finished
cell, once per ``--tolerance`` (``exact``: the bounds alone decide, as by default; a fraction:
also the search's prediction test, ``clic submission --search-tolerance``).  So a change to the search is judged
in seconds on real cells: the cells it asks for,
their CPU time as the full grid timed them (encoding and decoding), its rounds and the wall time of its encoding
on two workers (each round's cells dealt to the first free worker, in the order the search
submits them), the seconds the search itself spends pricing, and its allocation against the
full grid's.  A transparent run replays its first search (the PSNR alone, as
``pipeline.run`` does).  Writes ``bench/results/search_replay.md``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import makefile_commands, markdown_table, run_record, write_page
from eval.images import list_images
from pipeline.allocation import Budget, Target, Transparent, solve
from pipeline.cache import CellStore
from pipeline.codecs import ladder_candidates
from pipeline.grid import Cell, fill_cells, open_store
from pipeline.run import pricing
from pipeline.search import TOLERANCE, search_grid

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2


def requested(folder: Path, with_msssim: bool = False) -> tuple[str, Target, str]:
    """A run's ladder, target and objective, from its manifest (a transparent target's MS-SSIM
    only ``with_msssim``: its first search is for the PSNR alone)."""
    asked = json.loads((folder / "submission" / "manifest.json").read_text())["request"]
    if asked["mode"] == "budget":
        target = Budget(asked["bpp"], asked["bytes"])
    else:
        target = Transparent(asked["psnr"], asked["msssim"] if with_msssim else None)
    return asked["ladder"], target, asked["objective"]


def makespan(seconds: list[float], workers: int = WORKERS) -> float:
    """Wall time of tasks dealt in order to whichever of ``workers`` is free first."""
    free = [0.0] * workers
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


class Replay:
    """A ``pipeline.search.Fill`` that copies cells from the full grid's store into the scratch
    store instead of encoding them, and keeps what each call would have cost."""

    def __init__(self, full: CellStore) -> None:
        self.full = full
        self.rounds: list[list[float]] = []  # per call: the encode seconds of the cells it copied
        self.fill_s = 0.0

    def __call__(self, store: CellStore, cells: list[Cell], n_jobs, with_msssim: bool) -> tuple[list[dict], int]:
        start = time.perf_counter()
        copied = []
        for path, name in cells:
            if store.load(path.stem, name) is None:
                record = self.full.load(path.stem, name)
                store.save(record, self.full.bitstream(path.stem, name).read_bytes())
                copied.append(record["enc_s"] + record["dec_s"])
        self.rounds.append(copied)
        records, _ = fill_cells(store, cells, 1, with_msssim)
        self.fill_s += time.perf_counter() - start
        return records, len(copied)


def replay_run(images: list[Path], folder: Path, full: CellStore, cache: Path, tolerance: float | None) -> dict:
    """One run's search replayed on ``cache``; its costs and its allocation against the full grid's."""
    ladder, target, objective = requested(folder)
    replay = Replay(full)
    start = time.perf_counter()
    grid = search_grid(images, ladder_candidates(ladder), cache, 1, pricing((target,), 0, objective),
                       objective == "msssim", tolerance, fill=replay)
    search_s = time.perf_counter() - start - replay.fill_s
    full_table = pd.read_csv(folder / "rd.csv")
    if objective != "msssim":
        full_table = full_table.assign(msssim=float("nan"))
    mine, theirs = (solve(t, target, objective, "exact") for t in (grid.table, full_table))
    return {
        "search": "exact" if tolerance is None else f"tolerance {tolerance:g}", "run": folder.name,
        "cells": len(grid.table), "encoded": grid.encoded, "of full grid": len(full_table),
        "rounds": len(replay.rounds), "cell CPU-s": sum(map(sum, replay.rounds)),
        "cell wall s (2 workers)": sum(makespan(r) for r in replay.rounds), "search s": search_s,
        "Δ PSNR dB": mine.psnr - theirs.psnr, "Δ bytes": mine.total_bytes - theirs.total_bytes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", type=Path, required=True, help="folder of the recipe's --full-grid runs")
    parser.add_argument("--cache", type=Path, help="their cache (default: FULL/cache)")
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--tolerance", nargs="+", default=["exact", f"{TOLERANCE:g}"],
                        help="searches to replay: exact, or a tolerance (a fraction of an image's least cost)")
    args = parser.parse_args(argv)
    started = time.time()
    images = list_images(args.images)
    full = open_store(images, args.cache or args.full / "cache")
    runs = [Path(command[command.index("--out") + 1]).name for command in makefile_commands(args.images, args.full, "submission")]
    tables = []
    for tolerance in (None if t == "exact" else float(t) for t in args.tolerance):
        with tempfile.TemporaryDirectory() as scratch:
            rows = pd.DataFrame([replay_run(images, args.full / run, full, Path(scratch), tolerance) for run in runs])
        total = rows.drop(columns=["search", "run", "Δ PSNR dB", "Δ bytes"]).sum()
        tables += [rows, pd.DataFrame([{"search": rows["search"][0], "run": "total", **total}])]
    rows = pd.concat(tables, ignore_index=True).fillna({"Δ PSNR dB": "", "Δ bytes": ""})
    write_page("search_replay.md", [
        "# The adaptive search replayed over the full grid's cells", "",
        run_record("replay_search.py", argv, started, f"{args.images.name}, {len(images)} images"), "",
        __doc__.split("\n\n")[2].split("Writes")[0].strip(), "",
        markdown_table(rows, ".4g"),
    ])


if __name__ == "__main__":
    main()
