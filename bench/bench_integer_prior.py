"""What the integer probability path costs, and how decoding scales with threads.

    .venv/bin/python bench/bench_integer_prior.py [--images 24] [--ladder psnr] [--bpp 0.15]

Rate–distortion: every Kodak image at every ladder point, coded twice with the same
weights: by the float entropy-parameter path (CompressAI's latent codec, which the
format before version 2 used; its file size is that of the same header around its
streams) and by the integer path (``models.runtime.integer_prior``, what the codec writes now).
Both give real files and the encoder's own reconstruction.  Reported per point: bpp and
aggregate PSNR of each; the Bjøntegaard deltas between the two curves; and the exact
allocation at ``--bpp`` over each table.

Decoding speed: the integer path's files decoded in this process by the decoding runtime
(``models.runtime``, what a package ships: pure-Python range decoding, no CompressAI) on
1 and 2 torch threads (two rounds; the faster kept), split into the entropy decoding
(latent) and the synthesis, in seconds per megapixel.  Writes ``bench/results/integer_prior.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import allocate
from common import run_record, write_page
from common import markdown_table
from eval.bjontegaard import METHODS, bd_psnr, bd_rate
from eval.images import load_rgb8
from eval.metrics import aggregate_psnr
import models.ladder
from models import codec
from models.runtime import bitstream, decoder
from models.ladder import load_ladder
from models.weights import load_network

ROOT = Path(__file__).resolve().parents[1]


def float_path(net: torch.nn.Module, model_id: int, rate: float, image: np.ndarray) -> tuple[int, np.ndarray]:
    """(file bytes, reconstruction) of the float entropy-parameter path."""
    rate = codec.stored_rate(rate)
    x = codec.pad_to_multiple(codec.to_tensor(image))
    with torch.inference_mode():
        out = net.latent_codec.compress(net.analyse(x), *net.gains(torch.tensor([rate])))
        x_hat = net.g_s(out["y_hat"].contiguous(memory_format=torch.channels_last)).clamp(0, 1)
    size = len(bitstream.pack(bitstream.Header(model_id, rate, *image.shape[:2]), [s[0] for s in out["strings"]]))
    return size, codec.to_image(x_hat[..., : image.shape[0], : image.shape[1]])


def rd_rows(ladder_name: str, paths: list[Path]) -> pd.DataFrame:
    ladder = load_ladder(ladder_name)
    net = load_network(ladder)
    rows = []
    for path in paths:
        image = load_rgb8(path)
        for entry in ladder.entries:
            data = codec.encode_image(entry, image)
            coded = {"integer": (len(data), codec.decode_stream(data)),
                     "float": float_path(net, ladder.model_id, entry.rate, image)}
            for variant, (size, decoded) in coded.items():
                sse = float(((decoded.astype(np.int64) - image) ** 2).sum())
                rows.append({"image": path.stem, "candidate": f"{entry.name}-{variant}", "family": variant,
                             "point": entry.name, "bytes": size, "pixels": image.shape[0] * image.shape[1],
                             "sse": sse, "msssim": 0.0})
    return pd.DataFrame(rows)


def per_point(table: pd.DataFrame) -> pd.DataFrame:
    sums = table.groupby(["point", "family"])[["bytes", "pixels", "sse"]].sum().reset_index()
    rows = []
    for point, group in sums.groupby("point"):
        by = group.set_index("family")
        bpp = {v: 8 * by.at[v, "bytes"] / by.at[v, "pixels"] for v in ("float", "integer")}
        psnr = {v: aggregate_psnr(by.at[v, "sse"], int(by.at[v, "pixels"])) for v in ("float", "integer")}
        rows.append({"point": point, "float bpp": bpp["float"], "integer bpp": bpp["integer"],
                     "bytes Δ %": 100 * (by.at["integer", "bytes"] / by.at["float", "bytes"] - 1),
                     "float PSNR": psnr["float"], "integer PSNR": psnr["integer"],
                     "PSNR Δ dB": psnr["integer"] - psnr["float"]})
    return pd.DataFrame(rows)


def bjontegaard(points: pd.DataFrame) -> pd.DataFrame:
    """BD-rate and BD-PSNR of the integer path's curve against the float path's, both fits."""
    curves = [points[c].to_numpy() for c in ("float bpp", "float PSNR", "integer bpp", "integer PSNR")]
    return pd.DataFrame([{"fit": method, "BD-rate %": bd_rate(*curves, method), "BD-PSNR dB": bd_psnr(*curves, method)}
                         for method in METHODS])


def allocations(table: pd.DataFrame, bpp: float) -> pd.DataFrame:
    pixels = int(table.drop_duplicates("image")["pixels"].sum())
    cap = int(bpp * pixels / 8)
    rows = []
    for variant in ("float", "integer"):
        part = allocate.table.validate_rd_table(table[table["family"] == variant].reset_index(drop=True), variant)
        result = allocate.solve_budget(part, cap)
        rows.append({"path": variant, "cap bytes": cap, "bytes": result.total_bytes, "bpp": result.bpp,
                     "PSNR": aggregate_psnr(float(result.chosen["sse"].sum()), pixels)})
    return pd.DataFrame(rows)


def decode_speed(ladder_name: str, paths: list[Path]) -> pd.DataFrame:
    ladder = load_ladder(ladder_name)
    entry = ladder.entries[len(ladder.entries) // 2]
    files = [codec.encode_image(entry, load_rgb8(p)) for p in paths]
    megapixels = sum(load_rgb8(p).shape[0] * load_rgb8(p).shape[1] for p in paths) / 1e6
    runtime = decoder.decoder_for(ladder.model_id, models.ladder.LADDER_DIR, models.ladder.WEIGHTS_DIR)
    rows = []
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = {"latent": float("inf"), "synthesis": float("inf")}
        for _ in range(2):
            spent = {"latent": 0.0, "synthesis": 0.0}
            for data in files:
                header, streams = bitstream.parse(data)
                with torch.inference_mode():
                    start = time.perf_counter()
                    y_hat = runtime.latent(header, streams)
                    middle = time.perf_counter()
                    runtime.image(header, y_hat)
                    spent["latent"] += middle - start
                    spent["synthesis"] += time.perf_counter() - middle
            best = {k: min(best[k], spent[k]) for k in best}
        rows.append({"torch threads": threads, "latent s/MP": best["latent"] / megapixels,
                     "synthesis s/MP": best["synthesis"] / megapixels,
                     "decode s/MP": (best["latent"] + best["synthesis"]) / megapixels})
    torch.set_num_threads(before)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--ladder", default="psnr")
    parser.add_argument("--bpp", type=float, default=0.15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    paths = sorted((ROOT / "data" / "kodak").glob("*.png"))[: args.images]
    table = rd_rows(args.ladder, paths)
    points, allocated = per_point(table), allocations(table, args.bpp)
    deltas = bjontegaard(points)
    speed = decode_speed(args.ladder, paths)
    lines = [
        "# The integer probability path: rate–distortion cost and decoding speed", "",
        run_record("bench_integer_prior.py", argv, started, f"ladder {args.ladder}, first {len(paths)} Kodak images"),
        "",
        "## Each ladder point, float path vs integer path (same weights, real files)", "",
        markdown_table(points, ".4f"), "",
        "Bjøntegaard deltas of the integer path against the float path (eval/bjontegaard.py):", "",
        markdown_table(deltas, ".4f"), "",
        f"## Exact allocation at {args.bpp} bpp over each table", "", markdown_table(allocated, ".4f"), "",
        "## Decoding speed (integer path, one process)", "", markdown_table(speed, ".3f"),
    ]
    write_page("integer_prior.md", lines)


if __name__ == "__main__":
    main()
