"""Training throughput of the psnr ladder's network (N=64, M=96) on this CPU.

Usage::

    .venv/bin/python bench/bench_train.py [--steps N] [--threads T] [--weights PATH] [--out DIR] [--report NAME]

Times ``models.train.Trainer.train_step`` on random in-memory Kodak crops for
fp32 vs bf16 autocast, channels_last on/off, batch 16 of 128² vs batch 8
of 192², and ``torch.compile`` (inductor) of the two transforms.  The configurations are timed in interleaved rounds so that a varying
background load hits them alike.  Then checks that bf16 does not move the rate
term: the bpp estimate of one fixed batch, bf16 vs fp32 forward (eval mode,
trained weights when available).  Writes ``OUT/REPORT`` (default train.md in
bench/results).  Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.data import CropSampler  # noqa: E402
from models.train import TrainConfig, Trainer, bf16_is_fast, bits_per_pixel, distortion  # noqa: E402
from pipeline.package import cpu_name  # noqa: E402

KODAK = ROOT / "data" / "kodak"


@dataclass
class Case:
    label: str
    bf16: bool
    channels_last: bool
    batch: int
    crop: int
    compiled: bool = False  # TrainConfig.compile: torch.compile g_a and g_s


CASES = [
    Case("fp32, NCHW", False, False, 16, 128),
    Case("fp32, channels_last", False, True, 16, 128),
    Case("bf16, NCHW", True, False, 16, 128),
    Case("bf16, channels_last", True, True, 16, 128),
    Case("fp32, channels_last", False, True, 8, 192),
    Case("bf16, channels_last", True, True, 8, 192),
    Case("fp32, channels_last, torch.compile", False, True, 16, 128, compiled=True),
    Case("bf16, channels_last, torch.compile", True, True, 16, 128, compiled=True),
]


def default_weights() -> Path | None:
    for path in (ROOT / "models" / "weights" / "psnr.safetensors", ROOT / "runs" / "psnr" / "export.safetensors"):
        if path.is_file():
            return path
    return None


def throughput(steps: int, rounds: int, threads: int, workdir: Path) -> list[dict]:
    samplers = {crop: CropSampler([KODAK], crop, seed=0) for crop in {c.crop for c in CASES}}
    trainers, batches, warmups, times = [], [], [], [[] for _ in CASES]
    for i, case in enumerate(CASES):
        cfg = TrainConfig(ladder="psnr", out=workdir / f"case{i}", batch=case.batch, crop=case.crop, bf16=case.bf16,
                          channels_last=case.channels_last, compile=case.compiled, threads=threads, resume=False, seed=0)
        trainer = Trainer(cfg)
        batch = [samplers[case.crop].batch(case.batch) for _ in range(4)]
        t0 = time.perf_counter()
        for x in batch[:2]:  # warm-up: first-call set-up of the kernels (and compilation)
            trainer.train_step(x)
        warmups.append(time.perf_counter() - t0)
        trainers.append(trainer)
        batches.append(batch)
    per_round = max(1, steps // rounds)
    for r in range(rounds):
        for i, trainer in enumerate(trainers):
            for k in range(per_round):
                x = batches[i][k % len(batches[i])]
                t0 = time.perf_counter()
                trainer.train_step(x)
                times[i].append(time.perf_counter() - t0)
        print(f"  round {r + 1}/{rounds} done", flush=True)
    rows = []
    for case, t, warm in zip(CASES, times, warmups):
        median = statistics.median(t)
        rows.append({
            "case": case, "steps": len(t), "warmup_s": warm, "s_per_step": median, "mean_s_per_step": sum(t) / len(t),
            "samples_per_s": case.batch / median,
            "mpx_per_s": case.batch * case.crop**2 / median / 1e6,
            "best_s_per_step": min(t),
            "best_mpx_per_s": case.batch * case.crop**2 / min(t) / 1e6,
        })
    return rows


@torch.no_grad()
def bf16_rate_check(threads: int, weights: Path | None, workdir: Path) -> list[dict]:
    cfg = TrainConfig(ladder="psnr", out=workdir / "check", threads=threads, resume=False, seed=0, init=weights)
    trainer = Trainer(cfg)
    net = trainer.net.eval()
    x = CropSampler([KODAK], 128, seed=1).batch(20).contiguous(memory_format=torch.channels_last)
    rows = torch.arange(20) % len(trainer.lambdas)
    out = {}
    for bf16 in (False, True):
        res = net(x, rows.float(), bf16=bf16)
        out[bf16] = (bits_per_pixel(res["likelihoods"], 128 * 128), distortion(trainer.ladder, x, res["x_hat"].clamp(0, 1)))
    result = []
    for r in range(len(trainer.lambdas)):
        sel = rows == r
        b32, b16 = float(out[False][0][sel].mean()), float(out[True][0][sel].mean())
        m32, m16 = float(out[False][1][sel].mean()), float(out[True][1][sel].mean())
        result.append({"row": r, "bpp_fp32": b32, "bpp_bf16": b16, "rel": (b16 - b32) / b32,
                       "mse255_fp32": m32, "mse255_bf16": m16})
    b32, b16 = float(out[False][0].mean()), float(out[True][0].mean())
    result.append({"row": "all", "bpp_fp32": b32, "bpp_bf16": b16, "rel": (b16 - b32) / b32,
                   "mse255_fp32": float(out[False][1].mean()), "mse255_bf16": float(out[True][1].mean())})
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per configuration")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the steps are split into")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=None, help="trained weights for the bf16 rate check")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--report", default="train.md", help="file name of the report in OUT (one per machine)")
    parser.add_argument("--shared", action="store_true", help="say in the report that other work shared the cores")
    args = parser.parse_args(argv)
    weights = args.weights or default_weights()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = throughput(args.steps, args.rounds, args.threads, Path(tmp))
        check = bf16_rate_check(args.threads, weights, Path(tmp))
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    cmd = " ".join(["python", "bench/bench_train.py", *(argv if argv is not None else sys.argv[1:])])
    base = next(r for r in rows if r["case"].label == "fp32, NCHW")
    native_bf16 = bf16_is_fast(torch.device("cpu"))
    lines = [
        "# Training throughput (psnr ladder network, N=64, M=96, CPU)",
        "",
        f"- command: `{cmd}`",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{args.threads} torch threads (`TrainConfig.threads`); bfloat16 instructions: "
        f"{'yes (so `clic train` runs in bf16' if native_bf16 else 'no (so `clic train` runs in float32'} by default)",
        ("- **shared machine**: other work was using the same cores while this was measured (load average at"
         f" the end: {load}); absolute numbers are lower and noisy, the ratios are what to read."
         if args.shared else f"- no other work was meant to run (load average at the end: {load})."),
        f"- method: `Trainer.train_step` (forward, loss, backward, clip, Adam, aux step) on random in-memory Kodak"
        f" crops; 2 warm-up steps, then {rows[0]['steps']} timed steps per configuration in {args.rounds}"
        " interleaved rounds.",
        "",
        "| configuration | batch × crop | median s/step | samples/s | Mpx/s | vs fp32 NCHW | best s/step | best Mpx/s |"
        " best vs fp32 NCHW | mean s/step | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r["case"]
        lines.append(f"| {c.label} | {c.batch} × {c.crop}² | {r['s_per_step']:.3f} | {r['samples_per_s']:.1f} |"
                     f" {r['mpx_per_s']:.3f} | {r['mpx_per_s'] / base['mpx_per_s']:.2f}× | {r['best_s_per_step']:.3f} |"
                     f" {r['best_mpx_per_s']:.3f} | {r['best_mpx_per_s'] / base['best_mpx_per_s']:.2f}× |"
                     f" {r['mean_s_per_step']:.3f} | {r['warmup_s']:.1f} |")
    lines += ["", "samples/s and Mpx/s from the median step; \"best\" = fastest single step (least disturbed by"
              " the background load). Batch 8 × 192² has 1.125× the pixels of 16 × 128²: compare Mpx/s. Warm-up = the"
              " first two steps (kernel set-up; compilation for torch.compile)."]
    src = weights.relative_to(ROOT) if weights and weights.is_relative_to(ROOT) else weights
    lines += [
        "",
        "## Does bf16 move the rate term?",
        "",
        f"One fixed batch of 20 Kodak crops (128²), 4 per gain row, eval mode (rounding, no noise), weights"
        f" `{src or 'random init'}`. `bf16=True` runs only g_a/g_s under bfloat16 autocast; the entropy"
        " model stays float32.",
        "",
        "| gain row | bpp fp32 | bpp bf16 | relative difference | 255²·MSE fp32 | 255²·MSE bf16 |",
        "|---|---|---|---|---|---|",
    ]
    for c in check:
        lines.append(f"| {c['row']} | {c['bpp_fp32']:.4f} | {c['bpp_bf16']:.4f} | {100 * c['rel']:+.2f} % |"
                     f" {c['mse255_fp32']:.2f} | {c['mse255_bf16']:.2f} |")
    worst = max(abs(c["rel"]) for c in check)
    lines += ["", f"Largest relative bpp difference: {100 * worst:.2f} % ({'within' if worst <= 0.01 else 'OUTSIDE'} 1 %).",
              "", f"Wall time of this benchmark: {time.perf_counter() - started:.0f} s.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / args.report).write_text("\n".join(lines))
    print((args.out / args.report).read_text())


if __name__ == "__main__":
    main()
