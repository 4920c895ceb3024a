"""AVIF's subsampling and encoder speed: bytes at a PSNR target, or PSNR at bpp targets.

    .venv/bin/python bench/bench_avif_options.py [--images 6] [--target 40] [--qualities 76 82 88]
    .venv/bin/python bench/bench_avif_options.py --low-rate [--photos DIR --photo-images 4]

High rates (the default): encodes the first ``--images`` Kodak images with the AVIF
options of ``pipeline/codecs/classical.py`` at each subsampling, speed and quality;
per setting it reports the aggregate bpp and PSNR of the images (the challenge's
conventions: one MSE over all pixels), the bpp at ``--target`` dB interpolated in
log bpp and its change against the ``avif`` family's settings (4:2:0, speed 6).
This chose the options of the transparent track's ``avif444`` family.
Writes ``bench/results/avif_options.md``.

``--low-rate``: the comparison a learned ladder faces at CLIC's targets.  Speeds 6 to
2 at low qualities, on Kodak (and ``--photos``, high-resolution photographs), and
the aggregate PSNR each setting reaches at 0.075, 0.15 and 0.3 bpp (interpolated in
log bpp along its curve).  Writes ``bench/results/avif_low_rate.md``.

Encode time is the encoding thread's CPU time per megapixel (libavif/aom through
Pillow runs on one thread), so other work on the machine does not inflate it.
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
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr, sse
from pipeline.codecs.classical import avif_options
from pipeline.decode_program import decode_classical

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SETTINGS = (("4:2:0", 6), ("4:4:4", 6), ("4:4:4", 5), ("4:4:4", 4), ("4:4:4", 3))
LOW_RATE_SETTINGS = (("4:2:0", 6), ("4:4:4", 6), ("4:4:4", 4), ("4:4:4", 3), ("4:4:4", 2))
LOW_RATE_QUALITIES = [0, 8, 15, 22, 30, 38, 46, 54]  # the `avif` family's grid around 0.075-0.3 bpp
BPP_TARGETS = (0.075, 0.15, 0.3)


def measure(images: list[np.ndarray], quality: int, subsampling: str, speed: int) -> tuple[float, float, float]:
    """(bpp, aggregate PSNR, encode CPU seconds per megapixel) of the images at one setting."""
    options = avif_options(quality, speed, subsampling)
    n_bytes = total_sse = seconds = 0.0
    for image in images:
        buf = BytesIO()
        start = time.thread_time()
        Image.fromarray(image, "RGB").save(buf, format="AVIF", **options)
        seconds += time.thread_time() - start
        n_bytes += len(buf.getvalue())
        total_sse += sse(image, decode_classical(buf.getvalue(), "AVIF"))
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    return 8 * n_bytes / pixels, aggregate_psnr(total_sse, pixels), seconds / pixels * 1e6


def psnr_at(target: float, bpps: list[float], psnrs: list[float]) -> float:
    """The PSNR at ``target`` bpp on the curve, interpolated in log bpp (NaN outside it)."""
    order = np.argsort(bpps)
    log_bpp, psnr = np.log(np.asarray(bpps))[order], np.asarray(psnrs)[order]
    if not log_bpp[0] <= np.log(target) <= log_bpp[-1]:
        return float("nan")
    return float(np.interp(np.log(target), log_bpp, psnr))


def bpp_at(target: float, bpps: list[float], psnrs: list[float]) -> float:
    """The bpp at ``target`` dB on the curve, interpolated in log bpp (NaN outside it)."""
    order = np.argsort(psnrs)
    psnr, log_bpp = np.asarray(psnrs)[order], np.log(np.asarray(bpps))[order]
    if not psnr[0] <= target <= psnr[-1]:
        return float("nan")
    return float(np.exp(np.interp(target, psnr, log_bpp)))


def curves(images: list[np.ndarray], settings, qualities: list[int]) -> list[tuple]:
    """(subsampling, speed, quality, bpp, PSNR, CPU s/MP) of every setting and quality."""
    rows = []
    for subsampling, speed in settings:
        curve = [measure(images, q, subsampling, speed) for q in qualities]
        rows += [(subsampling, speed, q, *c) for q, c in zip(qualities, curve)]
        print(subsampling, speed, curve, flush=True)
    return rows


def curve_table(rows: list[tuple]) -> list[str]:
    return ["| subsampling | speed | quality | bpp | PSNR (dB) | encode CPU s/MP |", "|---|---|---|---|---|---|",
            *(f"| {s} | {v} | {q} | {b:.4f} | {p:.3f} | {t:.2f} |" for s, v, q, b, p, t in rows)]


def high_rate(args: argparse.Namespace, command: str) -> None:
    paths = sorted((ROOT / "data" / "kodak").glob("*.png"))[: args.images]
    rows = curves([load_rgb8(path) for path in paths], SETTINGS, args.qualities or [76, 82, 88])
    at_target = {(s, v): bpp_at(args.target, [r[3] for r in rows if r[:2] == (s, v)],
                                [r[4] for r in rows if r[:2] == (s, v)]) for s, v in SETTINGS}
    base = at_target[SETTINGS[0]]
    lines = [
        "# AVIF at high rates: subsampling and speed", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average {load_avg()}; "
        f"{', '.join(p.stem for p in paths)}; libavif/aom through Pillow, one thread, "
        "the `avif` family's other options.", "",
        *curve_table(rows),
        "", f"Bytes at {args.target:g} dB (bpp interpolated in log bpp; change against {SETTINGS[0][0]}, "
        f"speed {SETTINGS[0][1]}, the `avif` family):", "",
        "| subsampling | speed | bpp | change |", "|---|---|---|---|",
        *(f"| {s} | {v} | {b:.4f} | {100 * (b / base - 1):+.1f} % |" for (s, v), b in at_target.items()),
        "",
    ]
    write_page("avif_options.md", lines)


def low_rate(args: argparse.Namespace, command: str) -> None:
    sets = {"kodak": sorted((ROOT / "data" / "kodak").glob("*.png"))[: args.images]}
    if args.photos:
        photos = list_images(args.photos)
        sets[args.photos.name] = photos[:: max(1, len(photos) // args.photo_images)][: args.photo_images]
    lines = [
        "# AVIF at CLIC's low-rate targets: subsampling and speed", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average {load_avg()}; "
        "libavif/aom through Pillow, one thread, the `avif` family's other options.", "",
    ]
    for name, paths in sets.items():
        rows = curves([load_rgb8(path) for path in paths], LOW_RATE_SETTINGS, args.qualities or LOW_RATE_QUALITIES)
        lines += [f"## {name}: {', '.join(p.stem for p in paths)}", "", *curve_table(rows), "",
                  f"Aggregate PSNR (dB) at each target, interpolated in log bpp; in brackets the change against "
                  f"{LOW_RATE_SETTINGS[0][0]}, speed {LOW_RATE_SETTINGS[0][1]} (the `avif` family):", "",
                  "| subsampling | speed | " + " | ".join(f"{t:g} bpp" for t in BPP_TARGETS) + " | mean CPU s/MP |",
                  "|---|---|" + "---|" * (len(BPP_TARGETS) + 1)]
        base = None
        for s, v in LOW_RATE_SETTINGS:
            curve = [r for r in rows if r[:2] == (s, v)]
            psnrs = [psnr_at(t, [r[3] for r in curve], [r[4] for r in curve]) for t in BPP_TARGETS]
            base = psnrs if base is None else base
            cells = [f"{p:.3f} ({p - b:+.3f})" for p, b in zip(psnrs, base)]
            lines.append(f"| {s} | {v} | " + " | ".join(cells) + f" | {np.mean([r[5] for r in curve]):.2f} |")
        lines.append("")
    write_page("avif_low_rate.md", lines)


def write_page(name: str, lines: list[str]) -> None:
    text = "\n".join(lines)
    (RESULTS / name).write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="the first N Kodak images")
    parser.add_argument("--target", type=float, default=40.0, help="high rates: the PSNR target (dB)")
    parser.add_argument("--qualities", type=int, nargs="+")
    parser.add_argument("--low-rate", action="store_true", help="PSNR at 0.075, 0.15 and 0.3 bpp instead")
    parser.add_argument("--photos", type=Path, help="low rates: also a folder of high-resolution photographs")
    parser.add_argument("--photo-images", type=int, default=4, help="N of them, evenly spaced")
    args = parser.parse_args(argv)
    options = {"--low-rate": "" if args.low_rate else None, "--images": args.images,
               "--target": None if args.low_rate else f"{args.target:g}",
               "--qualities": " ".join(map(str, args.qualities)) if args.qualities else None,
               "--photos": args.photos.name if args.photos else None,  # the folder, not where it was here
               "--photo-images": args.photo_images if args.photos else None}
    command = " ".join(["python bench/bench_avif_options.py",
                        *(f"{flag} {value}".strip() for flag, value in options.items() if value is not None)])
    (low_rate if args.low_rate else high_rate)(args, command)


if __name__ == "__main__":
    main()
