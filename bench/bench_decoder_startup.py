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
   images are compared too (they must be identical).

Writes ``bench/results/decoder_startup.md``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from compressai.layers import CheckerboardMaskedConv2d

from bench_models import cpu_info, load_avg
from eval.images import list_images, load_rgb8
from models.codec import decode_stream, encode_image
from models.context import CheckerboardContext
from models.ladder import load_ladder
from models.weights import load_network

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--point", type=int, default=3)
    args = parser.parse_args(argv)
    began = time.time()
    startup: dict[str, list[float]] = {name: [] for name in STARTUP}
    for _ in range(args.rounds):
        for name, prelude in STARTUP.items():
            startup[name].append(startup_seconds(prelude, args.ladder))

    ladder = load_ladder(args.ladder)
    context = load_network(ladder).latent_codec.latent_codec["y"].context_prediction
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
    same = all(np.array_equal(a, b) for a, b in zip(*decoded.values()))

    command = " ".join(["python bench/bench_decoder_startup.py", *(argv if argv is not None else sys.argv[1:])])
    median = {name: statistics.median(v) for name, v in (startup | decode).items()}
    eager, deferred = median[list(STARTUP)[1]], median[list(STARTUP)[0]]
    plain, skipped = (median[name] for name in variants)
    lines = [
        "# Decoder start-up and the anchor pass", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average at the end {load_avg()}; "
        f"ladder {args.ladder}, point {args.point}; wall {time.time() - began:.0f} s.", "",
        "| start-up of a decoding process (import + load network) | median s | each round |", "|---|---|---|",
        *(f"| {name} | {median[name]:.2f} | {', '.join(f'{s:.2f}' for s in v)} |" for name, v in startup.items()),
        "", f"Deferring saves {eager - deferred:.2f} s per process ({1 - deferred / eager:.0%}).", "",
        f"| anchor-pass context ({args.images} Kodak images, {megapixels:.2f} MP) | median decode s/MP | each round |",
        "|---|---|---|",
        *(f"| {name} | {median[name]:.3f} | {', '.join(f'{s:.3f}' for s in v)} |" for name, v in decode.items()),
        "", f"Skipping the all-zero convolution: decode {1 - skipped / plain:.1%} faster; decoded images "
        f"{'identical' if same else 'DIFFERENT'}.", "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "decoder_startup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
