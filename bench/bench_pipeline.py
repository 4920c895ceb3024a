"""Wall time of each pipeline stage on Kodak; writes bench/results/pipeline.md.

    .venv/bin/python bench/bench_pipeline.py [--ladder classical] [--cache DIR]

By default the encode grid starts from an empty cache (a temp folder), so the
encode time is the cold cost of the whole grid; the report says how many
cells the run encoded.  It also lists the
measured aggregate bpp / PSNR of every candidate (the ladder's quality grids).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.allocation import Budget
from pipeline.codecs import default_ladder
from pipeline.plot import candidate_curves
from pipeline.run import Outcome, Settings, run_submission
from common import markdown_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "pipeline.md"
PLOT = RESULTS.with_name("pipeline_rd.png")


def ladder_section(table: pd.DataFrame) -> str:
    """Per family: the candidates' aggregate points and the per-image bpp range."""
    curves = candidate_curves(table)
    per_image_bpp = 8 * table["bytes"] / table["pixels"]
    ranges = per_image_bpp.groupby(table["family"]).agg(["min", "max"])
    summary = curves.groupby("family")["bpp"].agg(["min", "max"]).join(ranges, rsuffix="_image")
    summary.columns = ["aggregate bpp min", "aggregate bpp max", "per-image bpp min", "per-image bpp max"]
    return (
        "## Candidate grids (measured)\n\n" + markdown_table(summary.reset_index()) + "\n"
        + markdown_table(curves.rename(columns={"psnr": "PSNR dB"})) + "\n"
    )


def render(outcome: Outcome, settings: Settings) -> str:
    scores, grid = outcome.verification.scores, outcome.grid
    stages = pd.DataFrame({"stage": list(outcome.stage_s), "wall s": list(outcome.stage_s.values())})
    return (
        "# Pipeline benchmark\n\n"
        f"- images: `{settings.images}` ({scores.n_images} images, {scores.total_pixels} pixels)\n"
        f"- ladder: {settings.ladder} ({grid.table['candidate'].nunique()} candidates, {len(grid.table)} cells, "
        f"{grid.encoded} of them encoded in this run)\n"
        f"- target: {settings.target.describe()}, objective {settings.objective}, solver {settings.solver}\n"
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"n_jobs={settings.n_jobs}, Python {platform.python_version()}\n\n"
        "## Stage wall time\n\n" + markdown_table(stages) + "\n"
        f"RD plot: `{PLOT.name}`.  "
        f"Submission: PSNR {scores.psnr:.4f} dB, MS-SSIM {scores.msssim:.6f}, {scores.bpp:.4f} bpp, "
        f"{scores.total_bytes} bytes, decoding {outcome.verification.decoding_ms:.0f} ms, "
        f"decoder {outcome.verification.decoder_bytes} bytes.\n\n"
        + ladder_section(grid.table)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default=None, help="learned | classical | hybrid (default: as `clic`)")
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak", help="image folder")
    parser.add_argument("--cache", type=Path, default=None, help="reuse this encode cache (default: a cold temp one)")
    parser.add_argument("--bpp", type=float, default=0.15, help="budget in bits per pixel")
    parser.add_argument("--n-jobs", type=int, default=2, help="encode workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        settings = Settings(
            images=args.images, out=Path(tmp) / "out", cache=args.cache or Path(tmp) / "cache",
            ladder=args.ladder or default_ladder(), target=Budget(bpp=args.bpp), n_jobs=args.n_jobs,
        )
        outcome = run_submission(settings)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(render(outcome, settings))
        shutil.copyfile(outcome.files.plot, PLOT)
    print(f"wrote {RESULTS} and {PLOT}")


if __name__ == "__main__":
    main()
