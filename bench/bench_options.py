"""Measure the ladder's optional modules against the same network without them.

    python bench/bench_options.py --data DIR [--data DIR2] [--steps 500] [--images 24] [--init models/weights/psnr.safetensors]
                                  [--variants baseline centres]

Each variant of the psnr ladder (``baseline``: as committed; ``postfilter``:
``[arch] postfilter = true``; ``centres``: ``[arch] centres = true``; ``laplacian``:
``[arch] laplacian = true``) is fine-tuned the same number of steps from the
same weights, with the same seed and crops, then coded on Kodak at every ladder
point (real bitstreams).  Fine-tuning the baseline too means the comparison
isolates the option, not the extra steps.  Writes ``bench/results/options.md``
and ``options.csv``: per point bpp / aggregate PSNR, decode s/MP, and the
Bjøntegaard PSNR difference of each variant against the baseline.  With
``--variants`` (baseline always included) the files are named after the
variants, e.g. ``options_centres.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import tomllib
from pathlib import Path

import pandas as pd

import models.ladder
from common import cpu_info, curve_bd_psnr, load_avg, measure, summarise
from eval.images import list_images, load_rgb8
from models.codec import LearnedCodec
from models.train import TrainConfig, train
from models.weights import build, export, load_network

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VARIANTS = {
    "baseline": {},
    "postfilter": {"postfilter": True},
    "centres": {"centres": True},
    "laplacian": {"laplacian": True},
}


def variant_ladder(folder: Path, flags: dict[str, bool]) -> None:
    """Write the psnr ladder file into ``folder`` with extra ``[arch]`` flags."""
    text = models.ladder.ladder_file("psnr").read_text()
    assert tomllib.loads(text)["arch"], "the psnr ladder has an [arch] table"
    extra = "".join(f"{k} = {str(v).lower()}\n" for k, v in flags.items())
    (folder / "psnr.toml").write_text(text.replace("[arch]\n", f"[arch]\n{extra}", 1))


def run_variant(name: str, flags: dict, args: argparse.Namespace, images: dict, tmp: Path) -> pd.DataFrame:
    folder = tmp / name
    folder.mkdir()
    variant_ladder(folder, flags)
    models.ladder.use_folders(ladders=folder)
    load_network.cache_clear()
    config = TrainConfig(data=args.data, out=folder / "run", steps=args.steps, init=args.init, resume=False,
                         seed=args.seed, checkpoint_s=1e9, log_every=args.steps)
    trainer = train(config)
    last_log = json.loads((config.out / "train.log").read_text().splitlines()[-1])
    snapshot = build(trainer.ladder)
    snapshot.load_state_dict(trainer.net.state_dict())
    export(snapshot, trainer.ladder, folder / trainer.ladder.weights, note=f"{name}, {args.steps} steps")
    rows = []
    for entry in trainer.ladder.entries:
        point = summarise(pd.DataFrame(measure(LearnedCodec(entry, folder), images, with_msssim=False)))
        rows.append({"variant": name, "point": entry.name, "rate": entry.rate, **point,
                     "train_steps_per_s": last_log["samples_per_s"] / config.batch})
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, args: argparse.Namespace, n_images: int, variants: list[str]) -> str:
    base = table[table["variant"] == "baseline"]
    lines = [
        "# Optional modules, measured",
        "",
        f"`.venv/bin/python bench/bench_options.py --steps {args.steps} --images {n_images} "
        f"--variants {' '.join(variants)}`, "
        f"{datetime.date.today().isoformat()}; {cpu_info()}; load average {load_avg()}.",
        "",
        f"Every variant fine-tuned {args.steps} steps from `{args.init}` (seed {args.seed}, same crops), "
        f"then coded on {n_images} Kodak images at each ladder point (real bitstreams, 1 torch thread).",
        "",
        "| variant | point | bpp | PSNR (dB) | decode s/MP | train steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.point} | {r.bpp:.4f} | {r.psnr:.3f} | {r.dec_s_per_mp:.3f} "
                     f"| {r.train_steps_per_s:.2f} |")
    lines += ["", "| variant | BD-PSNR vs baseline (dB) | mean decode s/MP |", "|---|---|---|"]
    for name, rows in table.groupby("variant", sort=False):
        lines.append(f"| {name} | {curve_bd_psnr(base, rows):+.3f} | {rows['dec_s_per_mp'].mean():.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="fine-tuning steps per variant")
    parser.add_argument("--images", type=int, default=24, help="first N Kodak images to code")
    parser.add_argument("--init", type=Path, default=models.ladder.load_ladder("psnr").weights_path())
    parser.add_argument("--data", type=Path, action="append", required=True, help="training folder (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    variants = ["baseline", *(v for v in args.variants if v != "baseline")]
    stem = "options" if len(variants) == len(VARIANTS) else "_".join(["options", *variants[1:]])
    paths = list_images(ROOT / "data" / "kodak")[: args.images]
    images = {p.stem: load_rgb8(p) for p in paths}
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.concat([run_variant(n, VARIANTS[n], args, images, Path(tmp)) for n in variants])
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / f"{stem}.csv", index=False)
    text = report(table, args, len(images), variants)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
