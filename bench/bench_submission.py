"""`make submission` and `make submission-2021` timed from an empty cache, and the
leaderboard rows they write.

    .venv/bin/python bench/bench_submission.py [--images data/kodak] [--out DIR]
                                               [--recipes submission submission-2021] [--cache DIR]

Runs the ``clic submission`` commands of the Makefile's ``submission`` recipe, then of
its ``submission-2021`` recipe (read from it), into ``--out`` (default: a fresh
temporary folder) with one fresh cache there (or ``--cache``, whose finished cells are
reused), one after the other as ``make submission submission-2021`` does, and
records each run's wall time and the leaderboard rows it wrote.  The README's results
tables and run time come from here.  Writes one page per recipe:
``bench/results/submission.md`` and ``submission_2021.md``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import run_record, write_page
from common import markdown_table

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["Entry", "PSNR", "PSNR (per-image mean)", "MS-SSIM", "Images Size (Bytes)", "bpp", "Decoding Time (ms)",
           "Decoder Size (Bytes)"]


RECIPES = {"submission": "submission.md", "submission-2021": "submission_2021.md"}  # recipe -> page


def makefile_commands(images: Path, out: Path, target: str) -> list[list[str]]:
    """The ``clic submission`` lines of one of the Makefile's recipes, variables filled in."""
    recipe = ROOT.joinpath("Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    values = {"CLIC": str(ROOT / ".venv" / "bin" / "clic"), "IMAGES": str(images), "OUT": str(out), "REFINE": "0"}
    lines = [line.strip() for line in recipe.splitlines()[1:] if line.startswith("\t")]
    return [shlex.split(re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], line)) for line in lines]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one); its cache must be empty")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--cache", type=Path, help="cache folder (default: a fresh one in the output folder)")
    args = parser.parse_args(argv)
    images = f"{args.images.name}, {len(list(args.images.glob('*.png')))} images"
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "out"
        cache = args.cache.resolve() if args.cache else out / "cache"
        start = "a fresh cache" if args.cache is None else f"the cache `{args.cache}` (its finished cells reused)"
        for recipe in args.recipes:
            started, rows, seen = time.time(), [], set()
            if (out / "leaderboard.csv").is_file():
                seen = set(pd.read_csv(out / "leaderboard.csv")["Entry"])
            for command in makefile_commands(args.images.resolve(), out, recipe):
                begin = time.perf_counter()
                subprocess.run([*command, "--cache", str(cache)], check=True, cwd=ROOT, capture_output=True)
                rows.append({"run": command[command.index("--out") + 1].rsplit("/", 1)[-1],
                             "wall s": time.perf_counter() - begin})
            board = pd.read_csv(out / "leaderboard.csv")
            board = board[~board["Entry"].isin(seen)][COLUMNS]
            board = board.assign(**{"Decoding Time (ms)": board["Decoding Time (ms)"].round().astype(int)})
            times = pd.DataFrame(rows)
            write_page(RECIPES[recipe], [
                f"# `make {recipe}` from {start}", "",
                run_record("bench_submission.py", argv, started, images),
                "", f"Total: {times['wall s'].sum():.0f} s.", "", markdown_table(times, ".0f"), "",
                "Leaderboard rows (`out/leaderboard.csv`):", "", markdown_table(board, ".6g"),
            ])


if __name__ == "__main__":
    main()
