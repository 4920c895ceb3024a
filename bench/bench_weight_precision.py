"""What storing a ladder's weights in fewer bits would cost in RD, measured on Kodak.

    .venv/bin/python bench/bench_weight_precision.py [--ladder psnr|msssim] [--images 6] [--bits 8 6]
    .venv/bin/python bench/bench_weight_precision.py --ladder transparent \
        --checkpoint runs/transparent/checkpoint.safetensors --bits

The committed weights were float16 (msssim's are int8 since this measured it).
Fitting a third network (transparent) beside psnr and msssim in the ~15 MB
weights budget needs fewer bits per weight.  This
rounds every weight tensor of at least 2,048 values to ``b`` bits per output
channel (symmetric, one scale per channel: ``b`` = 8 is what a ladder with
``precision = "int8"`` stores), rebuilds the entropy tables, then codes the first ``--images`` Kodak images at
every ladder point with the real range coder.  Bytes are real file sizes (header
included, ``models.runtime.bitstream.pack``); PSNR from the rounded decoded pixels, and
for an MS-SSIM ladder MS-SSIM too (per image, weighted by pixels).
Writes ``bench/results/weight_precision.md`` and ``.csv`` (``weight_precision_LADDER``
for a ladder other than psnr).

``--checkpoint``: measure a training run's float32 weights instead of the
committed file (a ladder in training has none), beside what a float16 and an
int8 ladder file would store of them (``models.weights.export``, loaded back).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from common import ladder_report
from common import code, curve_bd_psnr, exported_copy, from_weights, rounded_copy
from common import markdown_table
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr, bpp, weighted_msssim
from models.ladder import PRECISIONS, Ladder, load_ladder
from models.weights import load_network

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def variants(ladder: Ladder, checkpoint: Path | None, bits: list[int], folder: Path) -> dict[str, torch.nn.Module]:
    """The reference network first (the committed weights, or a checkpoint's float32
    ones and each precision's file of them), then ``bits``-bit roundings of it."""
    if checkpoint is None:
        base = load_network(ladder)
        named = {f"{ladder.precision} (committed)": base}
    else:
        base = from_weights(ladder, checkpoint)
        named = {"float32 (checkpoint)": base} | {
            f"{precision} file": exported_copy(base, ladder, precision, folder) for precision in PRECISIONS
        }
    return named | {f"int{b} per channel": rounded_copy(base, b) for b in bits}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--bits", type=int, nargs="*", default=[8, 6])
    parser.add_argument("--checkpoint", type=Path, help="a training checkpoint's float32 weights, not the committed file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    ladder = load_ladder(args.ladder)
    with tempfile.TemporaryDirectory() as folder:
        networks = variants(ladder, args.checkpoint, args.bits, Path(folder))
    reference_name = next(iter(networks))  # what the others are compared with
    paths = list_images(ROOT / "data" / "kodak")[: args.images]
    images = {p.stem: load_rgb8(p) for p in paths}
    rows = [
        {"variant": name, "point": entry.name, "image": stem, "pixels": image.shape[0] * image.shape[1],
         **code(net, ladder, entry, image)}
        for name, net in networks.items() for entry in ladder.entries for stem, image in images.items()
    ]
    table = pd.DataFrame(rows)
    report = "weight_precision" if args.ladder == "psnr" else f"weight_precision_{args.ladder}"
    table.to_csv(RESULTS / f"{report}.csv", index=False)
    with_msssim = "msssim" in table
    curves = pd.DataFrame([
        {"variant": variant, "point": point, "bpp": bpp(cells["bytes"].sum(), cells["pixels"].sum()),
         "psnr": aggregate_psnr(cells["sse"].sum(), cells["pixels"].sum()),
         **({"msssim": weighted_msssim(cells["msssim"], cells["pixels"])} if with_msssim else {})}
        for (variant, point), cells in table.groupby(["variant", "point"], sort=False)
    ])
    reference = curves[curves["variant"] == reference_name]
    summary = pd.DataFrame([
        {"variant": variant, f"BD-PSNR vs {reference_name} (dB)": curve_bd_psnr(reference, rows),
         f"bytes vs {reference_name}": rows["bpp"].sum() / reference["bpp"].sum() - 1,
         **({f"MS-SSIM vs {reference_name} (mean over points)": (rows["msssim"].to_numpy() - reference["msssim"].to_numpy()).mean()}
            if with_msssim else {})}
        for variant, rows in curves.groupby("variant", sort=False)
    ])
    digits = 6 if with_msssim else 4  # MS-SSIM moves in the fifth decimal
    text = ladder_report("Weights in fewer bits: RD cost, measured", "bench_weight_precision.py", argv, __doc__,
                         args.ladder, list(images), [markdown_table(curves, f".{digits}f"), markdown_table(summary, f"+.{digits}f")],
                         start)
    (RESULTS / f"{report}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
