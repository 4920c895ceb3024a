"""Speed of the last synthesis layer (N → 3, 5×5, stride 2): transposed vs sub-pixel convolution.

    .venv/bin/python bench/bench_final_layer.py [--channels 64] [--rounds 5]

Times ``models.architecture.SubPixelDeconv`` in training mode (CompressAI's
transposed convolution) and in evaluation mode (the equivalent 3×3 convolution
+ pixel shuffle, what coding runs) on the activation a 768×512 Kodak image
gives it (1 × N × 256 × 384, channels-last), one torch thread, the two
alternating for ``--rounds`` rounds of 5 calls; reports the median per call and
the largest difference between the two outputs.
Writes ``bench/results/final_layer.md``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

import torch

from bench_models import cpu_info, load_avg
from models.architecture import SubPixelDeconv

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def seconds_per_call(layer: torch.nn.Module, x: torch.Tensor, calls: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        layer(x)
    return (time.perf_counter() - start) / calls


@torch.inference_mode()
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layer = SubPixelDeconv(args.channels, 3).to(memory_format=torch.channels_last)
    x = torch.randn(1, args.channels, 256, 384).contiguous(memory_format=torch.channels_last)
    difference = float((layer.train()(x) - layer.eval()(x)).abs().max())
    times: dict[str, list[float]] = {"transposed (training)": [], "sub-pixel (coding)": []}
    for _ in range(args.rounds):
        times["transposed (training)"].append(seconds_per_call(layer.train(), x))
        times["sub-pixel (coding)"].append(seconds_per_call(layer.eval(), x))
    command = " ".join(["python bench/bench_final_layer.py", *(argv or [])])
    median = {name: statistics.median(t) for name, t in times.items()}
    lines = [
        "# Last synthesis layer: transposed vs sub-pixel convolution", "",
        f"`{command}`, {datetime.date.today()}; {cpu_info()}; load average {load_avg()}; "
        f"input 1 × {args.channels} × 256 × 384 (a 768×512 image), one torch thread.", "",
        "| form | median ms per call | each round (ms) |", "|---|---|---|",
        *(f"| {name} | {1000 * median[name]:.1f} | {', '.join(f'{1000 * t:.1f}' for t in ts)} |"
          for name, ts in times.items()),
        "", f"Largest output difference: {difference:.2e} (float rounding).  Sub-pixel is "
        f"{median['transposed (training)'] / median['sub-pixel (coding)']:.2f}× as fast.", "",
    ]
    text = "\n".join(lines)
    (RESULTS / "final_layer.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
