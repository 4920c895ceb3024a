"""What the decoder's two session-6 savings are worth: deferred imports and the skipped anchor pass.

    .venv/bin/python bench/bench_decoder_startup.py [--rounds 5] [--images 6] [--ladder psnr] [--point 3]

1. Start-up (``models.lean_import``): fresh processes that import ``models.codec``
   and load the ladder's network, as each packaged-decoder worker does first.
   "eager" imports ``scipy.stats`` and pandas beforehand, which is what
   ``import compressai`` did before they were deferred.  The two alternate for
   ``--rounds`` rounds; the wall time includes the interpreter's own start.
2. Anchor pass (``models.context``): in one process, the first ``--images`` Kodak
   images encoded once, then decoded with the context convolution as CompressAI's
   ``CheckerboardMaskedConv2d`` and as ``CheckerboardContext``, alternating for
   ``--rounds`` rounds, on one torch thread as the codec always runs.  The decoded
   images are compared too (they must be identical), and the layer alone is
   timed on one image's all-zero anchor latent.
3. The packaged decoder on all cores (``--package``, default the low-rate
   submission of ``make submission``): ``decode.py`` run on its image files and on
   ``--copies`` copies of them (renamed), alternating.  A line through the two
   wall times splits them into start-up (intercept) and steady-state seconds per
   megapixel (slope), the figure the 0.5 s/MP target on 2 cores is about.

Writes ``bench/results/decoder_startup.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from compressai.layers import CheckerboardMaskedConv2d

from bench_models import cpu_info, load_avg
from eval.images import list_images, load_rgb8
from models.codec import _latent_shapes, coding_threads, decode_stream, encode_image
from models.context import CheckerboardContext
from models.ladder import load_ladder
from models.weights import load_network
from pipeline.package import read_manifest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STARTUP = {
    "deferred (default)": "",
    "eager (scipy.stats, pandas imported first)": "import scipy.stats, pandas; ",
}


def startup_seconds(prelude: str, ladder: str) -> float:
    probe = f"{prelude}import models.codec; from models.ladder import load_ladder; " \
            f"from models.weights import load_network; load_network(load_ladder({ladder!r}))"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True)
    return time.perf_counter() - start


def decode_seconds_per_mp(files: list[bytes], megapixels: float) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    images = [decode_stream(data) for data in files]
    return (time.perf_counter() - start) / megapixels, images


def packaged_decode_seconds(decoder: Path, files: Path) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(decoder), str(files), out], check=True, capture_output=True)
        return time.perf_counter() - start


def packaged_decoder_lines(package: Path, copies: int, rounds: int) -> list[str]:
    """Wall time of ``decode.py`` on the set and on ``copies`` copies: start-up and s/MP."""
    decoder, images = package / "decoder" / "decode.py", package / "images"
    megapixels = read_manifest(package)["allocation"]["total_pixels"] / 1e6
    walls: dict[int, list[float]] = {1: [], copies: []}
    with tempfile.TemporaryDirectory() as many:
        for path in images.iterdir():
            for k in range(copies):
                shutil.copyfile(path, Path(many) / f"{path.stem}-{k}{path.suffix}")
        for _ in range(rounds):
            walls[1].append(packaged_decode_seconds(decoder, images))
            walls[copies].append(packaged_decode_seconds(decoder, Path(many)))
    one, more = statistics.median(walls[1]), statistics.median(walls[copies])
    slope = (more - one) / ((copies - 1) * megapixels)
    return [
        f"| packaged decoder, {os.cpu_count()} cores (`{package}`) | files | MP | median wall s | s/MP | each round (s) |",
        "|---|---|---|---|---|---|",
        *(f"| {'the set' if k == 1 else f'{k} copies of the set'} | {k * len(list(images.iterdir()))} | "
          f"{k * megapixels:.2f} | {statistics.median(v):.2f} | {statistics.median(v) / (k * megapixels):.3f} | "
          f"{', '.join(f'{s:.2f}' for s in v)} |" for k, v in walls.items()),
        "", f"Steady state: {slope:.3f} s/MP; start-up {one - slope * megapixels:.2f} s (the line through the two).", "",
    ]


@torch.inference_mode()
def anchor_pass_ms(context: torch.nn.Module, cls: type, latent_shape: tuple, rounds: int) -> float:
    """Milliseconds of the context layer on an all-zero anchor latent of ``latent_shape`` (best of ``rounds`` × 10)."""
    zeros = torch.zeros(1, *latent_shape)
    context.__class__, best = cls, float("inf")
    try:
        with coding_threads():
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(10):
                    context(zeros)
                best = min(best, (time.perf_counter() - start) / 10 * 1000)
    finally:
        context.__class__ = CheckerboardContext
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--point", type=int, default=3)
    parser.add_argument("--package", type=Path, default=ROOT / "out" / "lowrate" / "submission")
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args(argv)
    began = time.time()
    startup: dict[str, list[float]] = {name: [] for name in STARTUP}
    for _ in range(args.rounds):
        for name, prelude in STARTUP.items():
            startup[name].append(startup_seconds(prelude, args.ladder))

    ladder = load_ladder(args.ladder)
    net = load_network(ladder)
    context = net.latent_codec.latent_codec["y"].context_prediction
    images = [load_rgb8(p) for p in list_images(ROOT / "data" / "kodak")[: args.images]]
    megapixels = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
    files = [encode_image(ladder.entries[args.point - 1], image) for image in images]
    variants = {"convolved (CompressAI)": CheckerboardMaskedConv2d, "bias only (CheckerboardContext)": CheckerboardContext}
    decode: dict[str, list[float]] = {name: [] for name in variants}
    decoded: dict[str, list[np.ndarray]] = {}
    decode_stream(files[0])  # warm-up
    for _ in range(args.rounds):
        for name, cls in variants.items():
            context.__class__ = cls
            seconds, decoded[name] = decode_seconds_per_mp(files, megapixels)
            decode[name].append(seconds)
    context.__class__ = CheckerboardContext
    latent_shape = _latent_shapes(net, *images[0].shape[:2])["y"]
    anchor_ms = {name: anchor_pass_ms(context, cls, latent_shape, args.rounds) for name, cls in variants.items()}
    same = all(np.array_equal(a, b) for a, b in zip(*decoded.values()))

    command = " ".join(["python bench/bench_decoder_startup.py", *(argv if argv is not None else sys.argv[1:])])
    median = {name: statistics.median(v) for name, v in (startup | decode).items()}
    eager, deferred = median[list(STARTUP)[1]], median[list(STARTUP)[0]]
    plain, skipped = (median[name] for name in variants)
    lines = [
        "# Decoder start-up and the anchor pass", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average at the end {load_avg()}; "
        f"ladder {args.ladder}, point {args.point}.", "",
        "| start-up of a decoding process (import + load network) | median s | each round |", "|---|---|---|",
        *(f"| {name} | {median[name]:.2f} | {', '.join(f'{s:.2f}' for s in v)} |" for name, v in startup.items()),
        "", f"Deferring saves {eager - deferred:.2f} s per process ({1 - deferred / eager:.0%}).", "",
        f"| anchor-pass context ({args.images} Kodak images, {megapixels:.2f} MP) | median decode s/MP | each round "
        "| the layer alone on one image's anchor pass (ms, best) |",
        "|---|---|---|---|",
        *(f"| {name} | {median[name]:.3f} | {', '.join(f'{s:.3f}' for s in v)} | {anchor_ms[name]:.3f} |"
          for name, v in decode.items()),
        "", f"Skipping the all-zero convolution: decode {1 - skipped / plain:.1%} faster; decoded images "
        f"{'identical' if same else 'DIFFERENT'}.", "",
    ]
    if (args.package / "decoder" / "decode.py").is_file():
        lines += packaged_decoder_lines(args.package, args.copies, args.rounds)
    lines.append(f"Wall time of this benchmark: {time.time() - began:.0f} s.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "decoder_startup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
