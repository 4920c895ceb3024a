"""What each candidate family buys in an exact allocation on Kodak, at the CLIC targets.

    .venv/bin/python bench/bench_families.py [--images data/kodak] [--cache cache] [--n-jobs 2]

Encodes the grid of ``hybrid`` (the learned psnr ladder and the Pillow codecs) plus the
command-line ``heif`` family (HEVC through libheif's x265) through the pipeline's own
cached grid (real files, decoded pixels), then allocates exactly at 0.075, 0.15 and
0.3 bpp with each set of families, and records the aggregate PSNR and how many images
each family took.  This is the measurement behind which families the default ladders
hold.  Writes ``bench/results/families.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from allocate import InfeasibleError, solve_budget
from allocate.metrics import cap_from_bpp
from common import markdown_table, run_record, write_page
from eval.images import list_images
from pipeline.codecs import ladder_candidates
from pipeline.grid import run_grid

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (0.075, 0.15, 0.3)
SETS = {
    "avif": ["avif"],
    "heif": ["heif"],
    "learned": ["learned"],
    "classical (Pillow)": ["jpeg", "webp", "avif", "avif444", "j2k"],
    "classical + heif": ["jpeg", "webp", "avif", "avif444", "j2k", "heif"],
    "hybrid (learned + classical)": ["learned", "jpeg", "webp", "avif", "avif444", "j2k"],
    "hybrid + heif": ["learned", "jpeg", "webp", "avif", "avif444", "j2k", "heif"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.time()
    table = run_grid(list_images(args.images), ladder_candidates("hybrid,heif"), args.cache, args.n_jobs).table
    pixels = int(table.groupby("image")["pixels"].first().sum())
    rows = []
    for name, families in SETS.items():
        row = {"candidates": name}
        for bpp in TARGETS:
            try:
                chosen = solve_budget(table[table["family"].isin(families)], cap_from_bpp(bpp, pixels), "sse")
            except InfeasibleError:
                row[f"PSNR at {bpp:g}"], row[f"images per family at {bpp:g}"] = float("nan"), "infeasible"
                continue
            row[f"PSNR at {bpp:g}"] = chosen.summary()["psnr"]
            counts = chosen.chosen["family"].value_counts()
            row[f"images per family at {bpp:g}"] = ", ".join(f"{f} {n}" for f, n in counts.items())
        rows.append(row)
    lines = [
        "# Candidate families in the exact allocation, Kodak", "",
        run_record("bench_families.py", argv, started, f"{len(table['image'].unique())} images, "
                   f"{table['candidate'].nunique()} candidates"), "",
        "Aggregate PSNR (dB) of the exact allocation within each cap (real file bytes), and the images each "
        "family took.", "",
        markdown_table(pd.DataFrame(rows), ".4f"),
    ]
    write_page("families.md", lines)


if __name__ == "__main__":
    main()
