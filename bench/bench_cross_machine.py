"""Packaged submissions decoded as on other machines: every CPU instruction-set setting and thread count.

    .venv/bin/python bench/bench_cross_machine.py [--submissions out/lowrate/submission ...] [--threads 1 2 4]

Each package's ``decoder/decode.py`` runs in a fresh process (``--jobs 1 --threads T``)
under every ``ATEN_CPU_CAPABILITY`` (default, avx2, and avx512 where the CPU has it) ×
``DNNL_MAX_CPU_ISA`` (SSE41, AVX2, default) × thread count, as a server with another CPU
would.  Each decode is compared with what the package promises: the latent digests in its
manifest, and the SSE the RD table recorded for each image (the aggregate PSNR change and
the largest per-image one).  The reference is the encoding run's own numbers.
Writes ``bench/results/cross_machine.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from common import run_record, write_page
from common import markdown_table
from eval.metrics import aggregate_psnr
from eval.score import score_folders
from pipeline.package import read_manifest

ROOT = Path(__file__).resolve().parents[1]
TRACKS = ("lowrate", "hybrid", "transparent", "msssim")


def configurations() -> list[tuple[str, str]]:
    """(ATEN_CPU_CAPABILITY, DNNL_MAX_CPU_ISA) pairs this CPU can run."""
    aten = ["default", "avx2"] + (["avx512"] if torch.backends.cpu.get_cpu_capability() == "AVX512" else [])
    return list(itertools.product(aten, ("SSE41", "AVX2", "default")))


def decode(submission: Path, out: Path, aten: str, dnnl: str, threads: int) -> tuple[dict[str, str], float]:
    """The package's decoder in a fresh process under one setting: (latent digests, seconds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA")}
    env |= {"ATEN_CPU_CAPABILITY": aten} | ({} if dnnl == "default" else {"DNNL_MAX_CPU_ISA": dnnl})
    latents = out.parent / f"{out.name}.latents.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-I", str(submission / "decoder" / "decode.py"), "--jobs", "1",
                           "--threads", str(threads), "--latents", str(latents), str(submission / "images"), str(out)],
                          env=env, capture_output=True, text=True, cwd=submission)
    if done.returncode != 0:
        raise SystemExit(f"{submission}: decoder failed under {aten}/{dnnl}/{threads}: {done.stderr.strip()}")
    return json.loads(latents.read_text()), time.perf_counter() - start


def psnr(sse: float, pixels: int) -> float:
    return math.inf if sse == 0 else 10 * math.log10(255**2 * 3 * pixels / sse)


def compare(submission: Path, images: Path, threads: list[int], scratch: Path) -> list[dict]:
    manifest = read_manifest(submission)
    cells = {c["image"]: c for c in manifest["images"]}
    pixels = sum(c["pixels"] for c in cells.values())
    reference = aggregate_psnr(sum(c["sse"] for c in cells.values()), pixels)
    expected = {image: c["latent"] for image, c in cells.items() if "latent" in c}
    rows = []
    for (aten, dnnl), t in itertools.product(configurations(), threads):
        out = scratch / f"{submission.parent.name}-{aten}-{dnnl}-{t}"
        latents, seconds = decode(submission, out, aten, dnnl, t)
        scores = score_folders(images, out).per_image.set_index("image")
        changes = [abs(psnr(scores.at[i, "sse"], c["pixels"]) - psnr(c["sse"], c["pixels"])) for i, c in cells.items()]
        rows.append({
            "package": submission.parent.name, "ATEN": aten, "oneDNN": dnnl, "threads": t,
            "latents identical": f"{sum(latents.get(i) == d for i, d in expected.items())}/{len(expected)}",
            "PSNR": aggregate_psnr(float(scores["sse"].sum()), pixels),
            "Δ PSNR dB": aggregate_psnr(float(scores["sse"].sum()), pixels) - reference,
            "max image Δ dB": max(changes),
            "exact images": f"{sum(scores.at[i, 'sse'] == c['sse'] for i, c in cells.items())}/{len(cells)}",
            "decode s": seconds,
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=Path, nargs="+",
                        default=[ROOT / "out" / t / "submission" for t in TRACKS])
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [row for s in args.submissions for row in compare(s, args.images, args.threads, Path(scratch))]
    table = pd.DataFrame(rows)
    lines = [
        "# Packaged submissions decoded under every instruction-set setting and thread count", "",
        run_record("bench_cross_machine.py", argv, started), "",
        "Reference: the RD table's SSE and the manifest's latent digests, recorded where the package was made.", "",
        markdown_table(table, ".5f"), "",
        f"Largest aggregate PSNR change {table['Δ PSNR dB'].abs().max():.2g} dB, largest per-image change "
        f"{table['max image Δ dB'].max():.2g} dB, over {len(table)} decodes.",
    ]
    write_page("cross_machine.md", lines)


if __name__ == "__main__":
    main()
