"""Learned coding speed with and without keeping freed memory (``models.allocator``).

    .venv/bin/python bench/bench_decode_memory.py [--images 6] [--rounds 3] [--ladder psnr] [--point 3]

Each measurement is a fresh process (the setting is process-wide) that encodes the
first ``--images`` Kodak images at one ladder point, then decodes them twice, on one
torch thread as the codec always runs; the first encode and decode are warm-up.
The two settings alternate for ``--rounds`` rounds, so background load hits both
alike.  Reports encode and decode seconds per megapixel (median and each round).
Writes ``bench/results/decode_memory.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_info, load_avg
from models.allocator import SWITCH

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

MEASURE = """
import json, sys, time
from eval.images import list_images, load_rgb8
from models.allocator import keep_freed_memory
from models.codec import decode_stream, encode_image
from models.ladder import load_ladder

images = [load_rgb8(p) for p in list_images(sys.argv[1])[: int(sys.argv[2])]]
entry = load_ladder(sys.argv[3]).entries[int(sys.argv[4]) - 1]
decode_stream(encode_image(entry, images[0]))  # warm-up: loads the network (and applies the setting)
megapixels = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
start = time.perf_counter()
files = [encode_image(entry, image) for image in images]
encoded = time.perf_counter()
for _ in range(2):
    for data in files:
        decode_stream(data)
done = time.perf_counter()
print(json.dumps({"kept": keep_freed_memory(), "enc": (encoded - start) / megapixels,
                  "dec": (done - encoded) / (2 * megapixels)}))
"""


def measure(setting: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-c", MEASURE, str(ROOT / "data" / "kodak"), str(args.images), args.ladder, str(args.point)]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, SWITCH: setting}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--point", type=int, default=3)
    args = parser.parse_args(argv)
    start = time.time()
    runs: dict[str, list[dict]] = {"1": [], "0": []}
    for _ in range(args.rounds):
        for setting in runs:
            runs[setting].append(measure(setting, args))
    label = {"1": "kept (default)", "0": f"given back ({SWITCH}=0)"}
    command = " ".join(["python bench/bench_decode_memory.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# Learned coding speed: freed memory kept in the process or given back", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average at the end {load_avg()}; "
        f"ladder {args.ladder}, point {args.point}, first {args.images} Kodak images, one torch thread.", "",
        "| freed memory | applied | encode s/MP (median) | decode s/MP (median) | decode s/MP per round |",
        "|---|---|---|---|---|",
    ]
    for setting, rows in runs.items():
        applied = "yes" if all(r["kept"] for r in rows) else "no"
        per_round = ", ".join(f"{r['dec']:.3f}" for r in rows)
        lines.append(f"| {label[setting]} | {applied} | {statistics.median(r['enc'] for r in rows):.3f} | "
                     f"{statistics.median(r['dec'] for r in rows):.3f} | "
                     f"{per_round} |")
    speedup = statistics.median(r["dec"] for r in runs["0"]) / statistics.median(r["dec"] for r in runs["1"])
    lines += ["", f"Decoding {speedup:.2f}× as fast with the memory kept.  Wall time: {time.time() - start:.0f} s.", ""]
    text = "\n".join(lines)
    (RESULTS / "decode_memory.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
