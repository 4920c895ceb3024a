"""Which weights an int8 ladder should keep in float16: the RD cost of rounding each one alone.

    .venv/bin/python bench/bench_int8_sensitivity.py --ladder transparent \
        --weights runs/transparent/checkpoint.safetensors [--images 1] [--points 2 3] [--keep 8]

An int8 ladder file (``precision = "int8"``) stores every weight of at least
2,048 values as int8 codes with one scale per output channel.  This rounds one
such weight at a time (the others as ``--weights`` has them: a training
checkpoint's float32 or a float16 file), codes the first ``--images`` Kodak
images at the ``--points`` (ladder points, from 1) with the real range coder,
and ranks the weights by the aggregate PSNR that rounding each costs (mean over
the points; bytes are real file sizes).  Then it rounds them all but the ``k``
costliest, k = 0 … ``--keep``: what an export with those ``k`` names in the
ladder file's ``keep_float16`` gives, and the bytes they add (a byte per value,
less their int8 scales).
Writes ``bench/results/int8_sensitivity_<ladder>.md`` and ``.csv`` (the ranking).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from common import ladder_report
from common import markdown_table
from common import code, from_weights, rounded_copy
from eval.images import list_images, load_rgb8
from eval.metrics import aggregate_psnr
from models.ladder import LadderEntry, load_ladder
from models.weights import int8_grid

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def coded(net: torch.nn.Module, entries: list[LadderEntry], images: list) -> tuple[float, int]:
    """Mean over ``entries`` of the images' aggregate PSNR, and all their files' bytes."""
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    psnrs, total = [], 0
    for entry in entries:
        cells = [code(net, entry.ladder, entry, image) for image in images]
        psnrs.append(aggregate_psnr(sum(c["sse"] for c in cells), pixels))
        total += sum(c["bytes"] for c in cells)
    return sum(psnrs) / len(psnrs), total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="transparent")
    parser.add_argument("--weights", type=Path, required=True, help="float weights: a training checkpoint or a float16 file")
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--points", type=int, nargs="+", default=[2, 3], help="ladder points, from 1")
    parser.add_argument("--keep", type=int, default=8, help="largest number of weights kept in float16 to try")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    start = time.time()
    ladder = load_ladder(args.ladder)
    entries = [ladder.entries[p - 1] for p in args.points]
    paths = list_images(ROOT / "data" / "kodak")[: args.images]
    images = [load_rgb8(p) for p in paths]
    base = from_weights(ladder, args.weights)
    psnr, size = coded(base, entries, images)
    large = {name: param for name, param in base.named_parameters() if int8_grid(param) is not None}

    def rounded(names: set[str]) -> dict:
        changed_psnr, changed_size = coded(rounded_copy(base, 8, names), entries, images)
        return {"PSNR change (dB)": changed_psnr - psnr, "bytes change": changed_size - size}

    ranking = pd.DataFrame([
        {"parameter": name, "shape": "×".join(map(str, param.shape)), **rounded({name})} for name, param in large.items()
    ]).sort_values("PSNR change (dB)", kind="stable", ignore_index=True)
    ranking.to_csv(RESULTS / f"int8_sensitivity_{args.ladder}.csv", index=False)
    kept_rows = []
    for k in range(args.keep + 1):
        kept = list(ranking["parameter"][:k])
        extra = sum(large[n].numel() - 4 * large[n].shape[0] for n in kept)  # float16 for int8 + scale
        kept_rows.append({"kept in float16": k, "last kept": kept[-1] if kept else "–", "bytes added": extra,
                          **rounded(set(large) - set(kept))})
    body = [
        f"Reference ({args.weights.name}, weights as stored): {psnr:.4f} dB mean over points "
        f"{', '.join(e.name for e in entries)}; {size:,} bytes.",
        "Every large weight rounded alone (costliest first; the top 15):",
        markdown_table(ranking.head(15), "+.4f"),
        "All of them rounded but the k costliest (what `keep_float16` with those k names stores):",
        markdown_table(pd.DataFrame(kept_rows), "+.4f"),
    ]
    text = ladder_report("Int8 weights: which to keep in float16", "bench_int8_sensitivity.py", argv, __doc__,
                         args.ladder, [p.stem for p in paths], body, start)
    (RESULTS / f"int8_sensitivity_{args.ladder}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
