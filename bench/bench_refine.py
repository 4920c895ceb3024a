"""Measure encoder-side latent refinement (``models.refine``) on Kodak.

    .venv/bin/python bench/bench_refine.py [--images 4] [--points 3] [--lr 0.003 0.01] [--decay 1 0.95]
                                           [--steps 10 25 50]

For each image, ladder point, learning rate and decay, one refinement run; after each
step count in ``--steps`` its latent is coded (real bytes) and decoded by the
real decoder.  Per (lr, decay, steps): bpp, aggregate PSNR and the change in real
``λ·D + R`` against the plain encode, both for the refined streams and for what
the encoder ships ("kept": the refined stream only where its real cost is
lower), and refinement seconds per step per megapixel on ``--threads`` threads.
Writes ``bench/results/refine.md`` and ``refine.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import time
from pathlib import Path

import pandas as pd
import torch

from common import cpu_info, load_avg
from common import markdown_table
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr, bpp, sse
from models.codec import pad_to_multiple, coded_rate, decode_stream, encode_latent, to_tensor
from models.ladder import load_ladder
from models.refine import rd_cost, refinement
from models.weights import load_network

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def coded(entry, image, y) -> dict:
    data = encode_latent(entry, image, y)
    decoded = decode_stream(data)
    return {"bytes": len(data), "sse": sse(image, decoded),
            "cost": rd_cost(entry.ladder, coded_rate(entry), image, decoded, len(data))}


def runs(args: argparse.Namespace, images: dict) -> pd.DataFrame:
    ladder = load_ladder(args.ladder)
    net = load_network(ladder)
    rows = []
    for name, image in images.items():
        x = pad_to_multiple(to_tensor(image))
        for point in args.points:
            entry = ladder.entries[point - 1]
            plain = coded(entry, image, None)
            rows.append({"image": name, "point": entry.name, "lr": 0.0, "decay": 1.0, "steps": 0, "pixels": image.size // 3,
                         "s_per_step": 0.0, **plain, "kept_bytes": plain["bytes"], "kept_sse": plain["sse"],
                         "kept_cost": plain["cost"]})
            for lr, decay in itertools.product(args.lr, args.decay):
                torch.set_num_threads(args.threads)
                latents = refinement(net, ladder, x, image.shape[:2], coded_rate(entry), lr, decay)
                refine_s, last = 0.0, time.perf_counter()
                with contextlib.closing(latents):
                    for step, y in enumerate(latents, 1):
                        refine_s += time.perf_counter() - last  # coding the checkpoints does not count
                        if step in args.steps:
                            result = coded(entry, image, y)
                            kept = result if result["cost"] < plain["cost"] else plain
                            rows.append({"image": name, "point": entry.name, "lr": lr, "decay": decay, "steps": step,
                                         "pixels": image.size // 3, "s_per_step": refine_s / step, **result,
                                         "kept_bytes": kept["bytes"], "kept_sse": kept["sse"],
                                         "kept_cost": kept["cost"]})
                            print(f"{name} {entry.name} lr {lr:g} decay {decay:g} step {step}: {result['bytes']} B, "
                                  f"cost {result['cost']:.4f} (plain {plain['cost']:.4f})", flush=True)
                            if step == max(args.steps):
                                break
                        last = time.perf_counter()
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (point, lr, decay, steps), group in table.groupby(["point", "lr", "decay", "steps"]):
        pixels = int(group["pixels"].sum())
        out.append({
            "point": point, "lr": lr, "decay": decay, "steps": steps,
            "bpp": bpp(int(group["bytes"].sum()), pixels), "psnr": aggregate_psnr(float(group["sse"].sum()), pixels),
            "cost": group["cost"].mean(),
            "kept bpp": bpp(int(group["kept_bytes"].sum()), pixels),
            "kept psnr": aggregate_psnr(float(group["kept_sse"].sum()), pixels),
            "kept cost": group["kept_cost"].mean(),
            "s/step/MP": group["s_per_step"].sum() / (pixels / 1e6) if steps else 0.0,
        })
    frame = pd.DataFrame(out)
    for col in ("cost", "kept cost"):
        base = frame[frame["steps"] == 0].set_index("point")[col]
        frame[f"{col} vs plain"] = frame[col] / frame["point"].map(base) - 1
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--images", type=int, default=4, help="N Kodak images, evenly spaced")
    parser.add_argument("--points", type=int, nargs="+", default=[3], help="ladder points (1-based)")
    parser.add_argument("--lr", type=float, nargs="+", default=[0.003, 0.01])
    parser.add_argument("--decay", type=float, nargs="+", default=[1.0], help="lr factor per step")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--threads", type=int, default=2, help="torch threads while refining")
    args = parser.parse_args()
    paths = list_images(ROOT / "data" / "kodak")
    paths = paths[:: max(1, len(paths) // args.images)][: args.images]
    images = {p.stem: load_rgb8(p) for p in paths}
    started = time.perf_counter()
    table = runs(args, images)
    frame = summary(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "refine.csv", index=False)
    lines = [
        "# Encoder-side latent refinement, measured",
        "",
        f"`.venv/bin/python bench/bench_refine.py --images {args.images} --points {' '.join(map(str, args.points))} "
        f"--lr {' '.join(f'{v:g}' for v in args.lr)} --decay {' '.join(f'{v:g}' for v in args.decay)} --steps {' '.join(map(str, args.steps))}`, "
        f"{datetime.date.today().isoformat()}; {cpu_info()} ({args.threads} while refining); "
        f"load average {load_avg()}; images {', '.join(images)}; weights of the {args.ladder} ladder.",
        "",
        "cost = real λ·D + R per image (mean); \"kept\" = what the encoder ships (refined only where cheaper).",
        "",
        markdown_table(frame, ".4f"),
        "",
        f"Wall time: {time.perf_counter() - started:.0f} s.",
    ]
    (RESULTS / "refine.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
