"""A training run's exports, each coded at every trained rate: how a ladder's RD curve moves.

    .venv/bin/python bench/bench_snapshots.py --ladder transparent SNAPSHOT.safetensors ... \
        [--images 6] [--reference out/transparent/rd.csv --family avif]

A ladder in training is judged by its curve, not its loss: this codes the first
``--images`` Kodak images with each given weights file (exports of one ladder, e.g.
copies of ``runs/LADDER/export.safetensors`` kept along a run) at each trained
gain row, real files (header included) and decoded pixels: aggregate bpp and
PSNR per rate.  ``--reference`` adds a classical family's points on the same
images from an RD table (``clic encode`` / ``clic submission`` output), and per
rate the gap in dB to that family's curve at the same bpp (linear in log bpp
between its points; none outside them).  Writes ``bench/results/snapshots_<ladder>.md``
(or ``--out``).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import ladder_report
from common import markdown_table
from common import code
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr, bpp
from models.ladder import LadderEntry, load_ladder
from models.weights import build, load_into, load_state, network_tensors, weights_note

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def training_step(path: Path) -> str:
    """The step an export's note starts with ("step 6078 after …"), else the file name."""
    match = re.match(r"step (\d+)", weights_note(path))
    return f"{int(match.group(1)):,}" if match else path.name


def gap_to(points: pd.DataFrame | None, rate: float, psnr: float) -> str:
    """" (Δ ±x.xx)": ``psnr`` minus the reference curve's at ``rate`` bpp, if within its points."""
    if points is None or not points["bpp"].min() <= rate <= points["bpp"].max():
        return ""
    curve = np.interp(np.log(rate), np.log(points["bpp"]), points["PSNR (dB)"])
    return f" (Δ {psnr - curve:+.2f})"


def snapshot_row(ladder, path: Path, images: dict, reference: pd.DataFrame | None) -> dict:
    """``path``'s network at every gain row: "bpp, dB" per rate, and the gap to ``reference``."""
    net = build(ladder)
    load_into(net, network_tensors(load_state(path)), path)
    net.ready_for_coding()
    row = {"snapshot": path.stem, "steps": training_step(path)}
    for rate in range(len(ladder.lambdas)):
        entry = LadderEntry(ladder, rate, float(rate))
        cells = pd.DataFrame([{"pixels": im.shape[0] * im.shape[1], **code(net, ladder, entry, im)}
                              for im in images.values()])
        pixels = cells["pixels"].sum()
        rate_bpp, psnr = bpp(cells["bytes"].sum(), pixels), aggregate_psnr(cells["sse"].sum(), pixels)
        row[f"rate {rate} (bpp, dB)"] = f"{rate_bpp:.3f}, {psnr:.2f}{gap_to(reference, rate_bpp, psnr)}"
    return row


def reference_points(table: Path, family: str, images: list[str]) -> pd.DataFrame:
    """Each candidate of ``family`` in the RD table, aggregated over ``images``."""
    rd = pd.read_csv(table)
    rd = rd[(rd["family"] == family) & rd["image"].isin(images)]
    if rd["image"].nunique() != len(images):
        raise SystemExit(f"{table}: {family} lacks some of the images {', '.join(images)}")
    sums = rd.groupby("candidate")[["bytes", "sse", "pixels"]].sum()
    points = [{"candidate": name, "bpp": bpp(c["bytes"], c["pixels"]), "PSNR (dB)": aggregate_psnr(c["sse"], c["pixels"])}
              for name, c in sums.iterrows()]
    return pd.DataFrame(points).sort_values("bpp")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshots", type=Path, nargs="+", help="weights files of the ladder, oldest first")
    parser.add_argument("--ladder", default="transparent")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--reference", type=Path, default=None, help="an RD table (rd.csv) for --family's points")
    parser.add_argument("--family", default="avif")
    parser.add_argument("--out", type=Path, default=None, help="report file (default: bench/results/snapshots_LADDER.md)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    ladder = load_ladder(args.ladder)
    images = {p.stem: load_rgb8(p) for p in list_images(ROOT / "data" / "kodak")[: args.images]}
    points = None if args.reference is None else reference_points(args.reference, args.family, list(images))
    body = [markdown_table(pd.DataFrame([snapshot_row(ladder, path, images, points) for path in args.snapshots]))]
    if points is not None:
        body += [f"{args.family} on the same images (`{args.reference}`; Δ above: dB over its curve at the same bpp):",
                 markdown_table(points, ".3f")]
    text = ladder_report(f"Training snapshots of the {args.ladder} ladder", "bench_snapshots.py", argv, __doc__,
                         args.ladder, list(images), body, start)
    (args.out or RESULTS / f"snapshots_{args.ladder}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
