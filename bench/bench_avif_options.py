"""AVIF at high rates: chroma subsampling and encoder speed, bytes at a PSNR target.

    .venv/bin/python bench/bench_avif_options.py [--images 6] [--target 40] [--qualities 76 82 88]

Encodes the first ``--images`` Kodak images with the AVIF options of
``pipeline/codecs/classical.py`` at each subsampling, speed and quality; per
setting it reports the aggregate bpp and PSNR of the images (the challenge's
conventions: one MSE over all pixels), the bpp at ``--target`` dB interpolated
in log bpp, its change against the ``avif`` family's settings (4:2:0, speed
6), and encode seconds per megapixel (one thread).  Chooses the options
of the transparent track's ``avif444`` family.
Writes ``bench/results/avif_options.md``.
"""

from __future__ import annotations

import argparse
import datetime
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from common import cpu_info, load_avg
from eval.images import load_rgb8
from eval.metrics import aggregate_psnr, sse
from pipeline.codecs.classical import avif_options
from pipeline.decode_program import decode_classical

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SETTINGS = (("4:2:0", 6), ("4:4:4", 6), ("4:4:4", 5), ("4:4:4", 4), ("4:4:4", 3))


def measure(images: list[np.ndarray], quality: int, subsampling: str, speed: int) -> tuple[float, float, float]:
    """(bpp, aggregate PSNR, encode seconds per megapixel) of the images at one setting."""
    options = avif_options(quality, speed, subsampling)
    n_bytes = total_sse = seconds = 0.0
    for image in images:
        buf = BytesIO()
        start = time.perf_counter()
        Image.fromarray(image, "RGB").save(buf, format="AVIF", **options)
        seconds += time.perf_counter() - start
        n_bytes += len(buf.getvalue())
        total_sse += sse(image, decode_classical(buf.getvalue(), "AVIF"))
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    return 8 * n_bytes / pixels, aggregate_psnr(total_sse, pixels), seconds / pixels * 1e6


def bpp_at(target: float, bpps: list[float], psnrs: list[float]) -> float:
    """The bpp at ``target`` dB on the curve, interpolated in log bpp (NaN outside it)."""
    order = np.argsort(psnrs)
    psnr, log_bpp = np.asarray(psnrs)[order], np.log(np.asarray(bpps))[order]
    if not psnr[0] <= target <= psnr[-1]:
        return float("nan")
    return float(np.exp(np.interp(target, psnr, log_bpp)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--target", type=float, default=40.0)
    parser.add_argument("--qualities", type=int, nargs="+", default=[76, 82, 88])
    args = parser.parse_args(argv)
    paths = sorted((ROOT / "data" / "kodak").glob("*.png"))[: args.images]
    images = [load_rgb8(path) for path in paths]
    rows, at_target = [], {}
    for subsampling, speed in SETTINGS:
        curve = [measure(images, q, subsampling, speed) for q in args.qualities]
        at_target[subsampling, speed] = bpp_at(args.target, [c[0] for c in curve], [c[1] for c in curve])
        rows += [(subsampling, speed, q, *c) for q, c in zip(args.qualities, curve)]
        print(subsampling, speed, curve, flush=True)
    base = at_target[SETTINGS[0]]
    command = " ".join(["python bench/bench_avif_options.py", *(argv or [])])
    lines = [
        "# AVIF at high rates: subsampling and speed", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average {load_avg()}; "
        f"{', '.join(p.stem for p in paths)}; libavif/aom through Pillow, one thread, "
        "the `avif` family's other options.", "",
        "| subsampling | speed | quality | bpp | PSNR (dB) | encode s/MP |", "|---|---|---|---|---|---|",
        *(f"| {s} | {v} | {q} | {b:.4f} | {p:.3f} | {t:.2f} |" for s, v, q, b, p, t in rows),
        "", f"Bytes at {args.target:g} dB (bpp interpolated in log bpp; change against {SETTINGS[0][0]}, "
        f"speed {SETTINGS[0][1]}, the `avif` family):", "",
        "| subsampling | speed | bpp | change |", "|---|---|---|---|",
        *(f"| {s} | {v} | {b:.4f} | {100 * (b / base - 1):+.1f} % |" for (s, v), b in at_target.items()),
        "",
    ]
    text = "\n".join(lines)
    (RESULTS / "avif_options.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
