"""Measure encoder-side latent refinement (``models.refine``) on Kodak (and a photo set).

    .venv/bin/python bench/bench_refine.py [--images 4] [--points 3] [--lr 0.003 0.01] [--decay 1 0.95]
                                           [--steps 10 25 50]
    .venv/bin/python bench/bench_refine.py --method sga --images 2 --points 4 --steps 100 300 1000
                                           [--photos DIR --photo-images 1]

``--method adam`` (plain refinement): for each image, ladder point, learning rate and
decay, one refinement run; after each step count in ``--steps`` its latent is coded.
``--method sga`` (stochastic Gumbel annealing): one run per step count, since its
temperature schedule spans the run; the learning rate is the method's (``--lr`` to
change it).  Each coded latent is real bytes, decoded by the real decoder.  Per set,
point, (lr, decay) and steps: bpp, aggregate PSNR and the change in real ``λ·D + R``
against the plain encode, both for the refined streams and for what the encoder
ships ("kept": the refined stream only where its real cost is lower), and
refinement seconds per step per megapixel on ``--threads`` threads.
Writes ``bench/results/refine.md`` and ``refine.csv`` (``refine_sga.*`` for SGA).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import cpu_info, load_avg
from common import markdown_table
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr, bpp, sse
from models.codec import pad_to_multiple, coded_rate, decode_stream, encode_latent, to_tensor
from models.ladder import load_ladder
from models.refine import Refinement, rd_cost, refinement
from models.sga import annealing
from models.weights import load_network

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def coded(entry, image, latents) -> dict:
    data = encode_latent(entry, image, latents).data
    decoded = decode_stream(data)
    return {"bytes": len(data), "sse": sse(image, decoded),
            "cost": rd_cost(entry.ladder, coded_rate(entry), image, decoded, len(data))}


def runs(args: argparse.Namespace, images: list[tuple[str, str, np.ndarray]]) -> pd.DataFrame:
    ladder = load_ladder(args.ladder)
    net = load_network(ladder)
    rows = []
    for image_set, name, image in images:
        x = pad_to_multiple(to_tensor(image))
        for point in args.points:
            entry = ladder.entries[point - 1]
            plain = coded(entry, image, None)
            base = {"set": image_set, "image": name, "point": entry.name, "pixels": image.size // 3}
            rows.append({**base, "lr": 0.0, "decay": 1.0, "steps": 0, "s_per_step": 0.0, **plain,
                         "kept_bytes": plain["bytes"], "kept_sse": plain["sse"], "kept_cost": plain["cost"]})
            for lr, decay, latents, wanted in refinement_runs(args, net, ladder, x, image, entry):
                torch.set_num_threads(args.threads)
                refine_s, last = 0.0, time.perf_counter()
                with contextlib.closing(latents):
                    for step, latent in enumerate(latents, 1):
                        refine_s += time.perf_counter() - last  # coding the checkpoints does not count
                        if step in wanted:
                            result = coded(entry, image, latent if isinstance(latent, tuple) else (latent, None))
                            kept = result if result["cost"] < plain["cost"] else plain
                            rows.append({**base, "lr": lr, "decay": decay, "steps": step,
                                         "s_per_step": refine_s / step, **result, "kept_bytes": kept["bytes"],
                                         "kept_sse": kept["sse"], "kept_cost": kept["cost"]})
                            print(f"{name} {entry.name} lr {lr:g} decay {decay:g} step {step}: {result['bytes']} B, "
                                  f"cost {result['cost']:.4f} (plain {plain['cost']:.4f})", flush=True)
                            if step == max(wanted):
                                break
                        last = time.perf_counter()
    return pd.DataFrame(rows)


def refinement_runs(args: argparse.Namespace, net, ladder, x: torch.Tensor, image: np.ndarray, entry):
    """(lr, decay, latent generator, the step counts to code) of each run for one image and point."""
    rate, size = coded_rate(entry), image.shape[:2]
    if args.method == "sga":
        lr = args.lr[0] if args.lr else Refinement.of("sga", 1).lr
        for steps in args.steps:
            yield lr, 1.0, annealing(net, ladder, x, size, rate, steps, lr), {steps}
        return
    for lr, decay in itertools.product(args.lr or [0.003, 0.01], args.decay):
        yield lr, decay, refinement(net, ladder, x, size, rate, lr, decay), set(args.steps)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (image_set, point, lr, decay, steps), group in table.groupby(["set", "point", "lr", "decay", "steps"], sort=False):
        pixels = int(group["pixels"].sum())
        out.append({
            "set": image_set, "point": point, "lr": lr, "decay": decay, "steps": steps,
            "bpp": bpp(int(group["bytes"].sum()), pixels), "psnr": aggregate_psnr(float(group["sse"].sum()), pixels),
            "cost": group["cost"].mean(),
            "kept bpp": bpp(int(group["kept_bytes"].sum()), pixels),
            "kept psnr": aggregate_psnr(float(group["kept_sse"].sum()), pixels),
            "kept cost": group["kept_cost"].mean(),
            "s/step/MP": group["s_per_step"].sum() / (pixels / 1e6) if steps else 0.0,
        })
    frame = pd.DataFrame(out).sort_values(["set", "point", "lr", "decay", "steps"], kind="stable")
    for col in ("cost", "kept cost"):
        base = frame[frame["steps"] == 0].set_index(["set", "point"])[col]
        plain = pd.MultiIndex.from_frame(frame[["set", "point"]]).map(base.to_dict().get)
        frame[f"{col} vs plain"] = frame[col].to_numpy() / plain.to_numpy(dtype=float) - 1
    return frame


def evenly_spaced(folder: Path, count: int) -> list[Path]:
    paths = list_images(folder)
    return paths[:: max(1, len(paths) // count)][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--method", choices=["adam", "sga"], default="adam")
    parser.add_argument("--images", type=int, default=4, help="N Kodak images, evenly spaced")
    parser.add_argument("--photos", type=Path, help="also a folder of high-resolution photographs")
    parser.add_argument("--photo-images", type=int, default=1, help="N of them, evenly spaced")
    parser.add_argument("--points", type=int, nargs="+", default=[3], help="ladder points (1-based)")
    parser.add_argument("--lr", type=float, nargs="+", help="adam: default 0.003 0.01; sga: the method's own")
    parser.add_argument("--decay", type=float, nargs="+", default=[1.0], help="adam: lr factor per step")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--threads", type=int, default=2, help="torch threads while refining")
    args = parser.parse_args()
    sets = [("kodak", evenly_spaced(ROOT / "data" / "kodak", args.images))]
    if args.photos:
        sets.append((args.photos.name, evenly_spaced(args.photos, args.photo_images)))
    images = [(name, p.stem, load_rgb8(p)) for name, paths in sets for p in paths]
    started = time.perf_counter()
    table = runs(args, images)
    frame = summary(table)
    page = "refine" if args.method == "adam" else f"refine_{args.method}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / f"{page}.csv", index=False)
    options = {"--method": args.method if args.method != "adam" else None, "--images": args.images,
               "--photos": args.photos.name if args.photos else None,
               "--photo-images": args.photo_images if args.photos else None,
               "--points": " ".join(map(str, args.points)),
               "--lr": " ".join(f"{v:g}" for v in args.lr) if args.lr else None,
               "--decay": " ".join(f"{v:g}" for v in args.decay) if args.method == "adam" else None,
               "--steps": " ".join(map(str, args.steps))}
    command = " ".join(f"{flag} {value}" for flag, value in options.items() if value is not None)
    lines = [
        f"# Encoder-side latent refinement ({args.method}), measured",
        "",
        f"`.venv/bin/python bench/bench_refine.py {command}`, "
        f"{datetime.date.today().isoformat()}; {cpu_info()} ({args.threads} while refining); "
        f"load average {load_avg()}; images {', '.join(f'{s}/{n}' for s, n, _ in images)}; "
        f"weights of the {args.ladder} ladder.",
        "",
        "cost = real λ·D + R per image (mean); \"kept\" = what the encoder ships (refined only where cheaper).",
        "",
        markdown_table(frame, ".4f"),
        "",
        f"Wall time: {time.perf_counter() - started:.0f} s.",
    ]
    (RESULTS / f"{page}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
