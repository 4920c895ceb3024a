"""MS-SSIM implementations timed and checked against pytorch_msssim in float64 on Kodak.

    .venv/bin/python bench/bench_msssim.py [--images data/kodak]

Every Kodak image is JPEG-coded at qualities 5, 40 and 95 and scored by
``pytorch_msssim.ms_ssim`` in float64 (the reference), the same in float32, and
``eval.msssim`` (what clicpack uses: scipy filtering in float64, with the original's half of
the work done once per image, as an encode grid scores every candidate of an image against
one original).  Reports the mean seconds per score on one thread and the largest
difference from the reference.  Writes ``bench/results/msssim.md``.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pytorch_msssim import ms_ssim

from common import markdown_table, run_record, write_page
from eval.images import list_images, load_rgb8
from eval.metrics import MSSSIM_WEIGHTS, msssim_scorer

ROOT = Path(__file__).resolve().parents[1]
QUALITIES = (5, 40, 95)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _pytorch(dtype: torch.dtype):
    def score(a: np.ndarray, b: np.ndarray) -> float:
        x, y = (torch.from_numpy(z.astype(np.float64)).permute(2, 0, 1)[None].to(dtype) for z in (a, b))
        return float(ms_ssim(x, y, data_range=255, win_size=11, weights=list(MSSSIM_WEIGHTS)))
    return score


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "kodak")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    seconds = {"pytorch_msssim float64 (reference)": 0.0, "pytorch_msssim float32": 0.0,
               "eval.msssim: the original's half": 0.0, "eval.msssim: per candidate": 0.0}
    worst = {name: 0.0 for name in seconds}
    paths = list_images(args.images)
    scores = 0
    for path in paths:
        original = load_rgb8(path)
        begin = time.perf_counter()
        scorer = msssim_scorer(original)
        seconds["eval.msssim: the original's half"] += time.perf_counter() - begin
        for quality in QUALITIES:
            decoded, scores = _jpeg(original, quality), scores + 1
            values = {}
            for name, score in (("pytorch_msssim float64 (reference)", _pytorch(torch.float64)),
                                ("pytorch_msssim float32", _pytorch(torch.float32)),
                                ("eval.msssim: per candidate", lambda a, b: scorer(b))):
                begin = time.perf_counter()
                values[name] = score(original, decoded)
                seconds[name] += time.perf_counter() - begin
            reference = values["pytorch_msssim float64 (reference)"]
            for name, value in values.items():
                worst[name] = max(worst[name], abs(value - reference))
    rows = pd.DataFrame([
        {"implementation": name, "s per score": seconds[name] / (len(paths) if "half" in name else scores),
         "largest |difference| from the reference": "" if "half" in name else f"{worst[name]:.1e}"}
        for name in seconds
    ])
    write_page("msssim.md", [
        "# MS-SSIM: pytorch_msssim against `eval.msssim`", "",
        run_record("bench_msssim.py", argv, started, f"{args.images.name}, {len(paths)} images × JPEG q{QUALITIES}, one thread"),
        "", markdown_table(rows, ".3f"), "",
        "`eval.msssim` computes the original's half (its pyramid, μx, E[x²]) once per image; "
        "each further candidate costs one `per candidate` score.",
    ])


if __name__ == "__main__":
    main()
