"""`make submission` and `make submission-2021` timed from an empty cache, and the
leaderboard rows they write.

    .venv/bin/python bench/bench_submission.py [--images data/kodak] [--out DIR]

Runs the ``clic submission`` commands of the Makefile's ``submission`` recipe, then of
its ``submission-2021`` recipe (read from it), into ``--out`` (default: a fresh
temporary folder) with one fresh cache there, one after the other as ``make
submission submission-2021`` does, and records each run's wall time and the
leaderboard rows.  The README's results tables and run time come from here.  Writes
``bench/results/submission.md``.
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


RECIPES = ("submission", "submission-2021")


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
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "out"
        rows = []
        for target in RECIPES:
            for command in makefile_commands(args.images.resolve(), out, target):
                command += ["--cache", str(out / "cache")]
                begin = time.perf_counter()
                subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
                rows.append({"recipe": f"make {target}", "run": command[command.index("--out") + 1].rsplit("/", 1)[-1],
                             "wall s": time.perf_counter() - begin})
        board = pd.read_csv(out / "leaderboard.csv")
    times = pd.DataFrame(rows)
    board = board[COLUMNS].assign(**{"Decoding Time (ms)": board["Decoding Time (ms)"].round().astype(int)})
    lines = [
        "# `make submission` and `make submission-2021` from an empty cache", "",
        run_record("bench_submission.py", argv, started, f"{args.images.name}, {len(list(args.images.glob('*.png')))} images"),
        "", f"Total: {times['wall s'].sum():.0f} s (`make submission`: "
        f"{times.loc[times['recipe'] == 'make submission', 'wall s'].sum():.0f} s).", "", markdown_table(times, ".0f"), "",
        "Leaderboard rows (`out/leaderboard.csv`):", "", markdown_table(board, ".6g"),
    ]
    write_page("submission.md", lines)


if __name__ == "__main__":
    main()
