"""How far a trained ladder's network goes above its top rate with finer quantisation alone.

    .venv/bin/python bench/bench_gain_ceiling.py [--ladder psnr] [--weights-dir DIR] [--images 6] [--steps 0 1 2 3 4 6]

A variable-rate network quantises its latent more finely as its gains grow.
This pushes the top gain row ``k`` λ-steps further (to λ_top·(λ_top / λ_below)^k,
extrapolated as ``models.widen.retarget_gain_tables`` does: geometrically in log
λ by the median slope of the top two rows, each inverse keeping its channel's
gain × inverse), with the transforms frozen, and codes the first
``--images`` Kodak images with the real range coder (file bytes, header
included; PSNR of the decoded pixels).  Where PSNR stops rising, the
transforms, not the quantiser, limit quality: a ladder for higher rates (the
transparent track) needs transforms trained there.  The last row is that
limit itself: the latent at the top row's gains decoded without quantisation
(no coding, so no bytes).  ``--weights-dir`` measures a training run's export
(a folder holding ``LADDER.safetensors``).  Writes
``bench/results/gain_ceiling_<ladder>.md``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch

from bench_models import ladder_report
from bench_pipeline import markdown_table
from bench_weight_precision import code
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr, bpp, sse
from models.extend import GAIN_TABLES
from models.codec import pad_to_multiple, to_image, to_tensor
from models.ladder import load_ladder
from models.weights import load_network
from models.widen import retarget_gain_tables

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def pushed(net: torch.nn.Module, lambdas: tuple[float, ...], k: float) -> torch.nn.Module:
    """``net`` whose top gain row sits ``k`` λ-steps further up (``y`` and ``z``, with inverses),
    extrapolated as ``models.widen.retarget_gain_tables`` does."""
    top = lambdas[-1] * (lambdas[-1] / lambdas[-2]) ** k
    out = copy.deepcopy(net)
    with torch.no_grad():
        tables = retarget_gain_tables({name: getattr(net, name) for name in GAIN_TABLES}, lambdas, (*lambdas[:-1], top))
        for name, table in tables.items():
            getattr(out, name).copy_(table)
    return out


@torch.no_grad()
def unquantised_sse(net: torch.nn.Module, rate: float, image) -> float:
    """SSE of ``image`` through the transforms with the latent at ``rate``'s gains, unrounded."""
    x = to_tensor(image)
    y_gain, _, y_gain_inv, _ = net.gains(torch.tensor([rate]))
    x_hat = net.g_s(net.analyse(pad_to_multiple(x)) * y_gain * y_gain_inv)[..., : x.shape[2], : x.shape[3]]
    return sse(image, to_image(x_hat))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--weights-dir", type=Path, default=None, help="folder of LADDER.safetensors (default: the committed one)")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--steps", type=float, nargs="+", default=[0, 1, 2, 3, 4, 6])
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    ladder = load_ladder(args.ladder)
    base = load_network(ladder, args.weights_dir)
    top = ladder.entries[-1]
    top_row = len(ladder.lambdas) - 1
    if top.rate != top_row:
        raise SystemExit(f"{ladder.name}: its last point (rate {top.rate:g}) is not its top gain row {top_row}")
    images = {p.stem: load_rgb8(p) for p in list_images(ROOT / "data" / "kodak")[: args.images]}
    rows = []
    for k in args.steps:
        net = pushed(base, ladder.lambdas, k)
        cells = pd.DataFrame([{"pixels": im.shape[0] * im.shape[1], **code(net, ladder, top, im)}
                              for im in images.values()])
        rows.append({"steps above the top row": f"{k:g}", "bpp": bpp(cells["bytes"].sum(), cells["pixels"].sum()),
                     "PSNR (dB)": aggregate_psnr(cells["sse"].sum(), cells["pixels"].sum())})
    pixels = sum(im.shape[0] * im.shape[1] for im in images.values())
    rows.append({"steps above the top row": "no quantisation", "bpp": "(not coded)",
                 "PSNR (dB)": aggregate_psnr(sum(unquantised_sse(base, top.rate, im) for im in images.values()), pixels)})
    table = pd.DataFrame(rows)
    text = ladder_report("Finer quantisation alone: where a trained network's quality stops", "bench_gain_ceiling.py",
                         argv, __doc__, args.ladder, list(images), [markdown_table(table, ".3f")], start)
    (RESULTS / f"gain_ceiling_{args.ladder}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
