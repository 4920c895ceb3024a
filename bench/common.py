"""What the benchmarks share: the record each results page opens with, tables, and coding a network.

Every benchmark writes its own page in ``bench/results/`` and opens it with the command,
date, machine and load (:func:`run_record` / :func:`ladder_report`), so a number can
always be traced to the run that produced it.
"""

from __future__ import annotations

import copy
import datetime
import os
import re
import shlex
import sys
import time
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eval.bjontegaard import bd_psnr
from eval.metrics import aggregate_psnr, bpp, msssim_rgb, sse, weighted_msssim
from models.codec import decode_with, encode_with
from models.ladder import Ladder
from models.runtime import bitstream
from models.runtime.decoder import dequantize
from models.weights import build, export, int8_grid, load_into, load_state, network_tensors
from pipeline.package import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def cpu_info() -> str:
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} torch threads"


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def command_line(script: str, argv: list[str] | None) -> str:
    return shlex.join(["python", f"bench/{script}", *(sys.argv[1:] if argv is None else argv)])


def run_record(script: str, argv: list[str] | None, started: float, what: str = "") -> str:
    """One line for a results page: the command, date, machine, load, ``what`` was measured, wall time."""
    return (f"`{command_line(script, argv)}`, {datetime.date.today()}; {cpu_info()}; load average at the end "
            f"{load_avg()}; {what + '; ' if what else ''}{time.time() - started:.0f} s.")


def ladder_report(title: str, script: str, argv: list[str] | None, doc: str, ladder: str,
                  images: list[str], body: list[str], started: float) -> str:
    """A results page: title; the command, date, CPU and load; the method (the script
    docstring's third paragraph up to "Writes"); each ``body`` block; the wall time."""
    method = doc.split("\n\n", 2)[2].split("Writes")[0].strip()
    return "\n".join([
        f"# {title}", "",
        f"`{command_line(script, argv)}`, {datetime.date.today()}; {cpu_info()}; load average {load_avg()}; "
        f"ladder {ladder}, images {', '.join(images)}.", "",
        method, "", *[line for block in body for line in (block, "")],
        f"Wall time: {time.time() - started:.0f} s.", "",
    ])


def makefile_commands(images: Path, out: Path, target: str) -> list[list[str]]:
    """The ``clic submission`` lines of one of the Makefile's recipes, variables filled in."""
    recipe = ROOT.joinpath("Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    values = {"CLIC": str(ROOT / ".venv" / "bin" / "clic"), "IMAGES": str(images), "OUT": str(out), "REFINE": "0"}
    lines = [line.strip() for line in recipe.splitlines()[1:] if line.startswith("\t")]
    return [shlex.split(re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], line)) for line in lines]


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    cells = frame.map(lambda v: format(v, floatfmt) if isinstance(v, float) else str(v))
    return head + "".join("| " + " | ".join(row) + " |\n" for row in cells.itertuples(index=False))


# -- a network in memory: rounded, reloaded, coding one image -------------------------------

def rounded_copy(net: torch.nn.Module, bits: int, names: Collection[str] | None = None) -> torch.nn.Module:
    """``net`` with each large weight (or only those ``names``) rounded to ``bits`` bits per
    output channel (``models.weights.int8_grid``, as an int8 export stores them), tables rebuilt."""
    out = copy.deepcopy(net)
    with torch.no_grad():
        for name, param in out.named_parameters():
            grid = int8_grid(param, bits) if names is None or name in names else None
            if grid is not None:
                param.copy_(dequantize(*grid))
    out.update(force=True)
    return out


def from_weights(ladder: Ladder, path: Path) -> torch.nn.Module:
    """The network of a weights file or a training checkpoint (float32), its tables rebuilt, ready to code."""
    net = build(ladder)
    load_into(net, network_tensors(load_state(path)), path)
    net.update(force=True)
    return net.ready_for_coding()


def exported_copy(net: torch.nn.Module, ladder: Ladder, precision: str, folder: Path) -> torch.nn.Module:
    """``net`` as a ladder file of ``precision`` stores it: exported, then loaded back."""
    path = folder / f"{precision}.safetensors"
    export(copy.deepcopy(net), replace(ladder, precision=precision), path)
    return from_weights(ladder, path)


@torch.inference_mode()
def code(net: torch.nn.Module, ladder, entry, image) -> dict:
    """One image at one point: real file bytes, the decoded image's SSE (and MS-SSIM)."""
    data = encode_with(net, ladder.model_id, entry.rate, image)
    decoded = decode_with(net, *bitstream.parse(data))
    cell = {"bytes": len(data), "sse": sse(image, decoded)}
    if ladder.metric == "msssim":
        cell["msssim"] = msssim_rgb(image, decoded)
    return cell


def curve_bd_psnr(reference: pd.DataFrame, test: pd.DataFrame) -> float:
    """BD-PSNR (dB, ``eval.bjontegaard``) of ``test`` over ``reference``: frames with ``bpp`` and ``psnr``."""
    return bd_psnr(reference["bpp"], reference["psnr"], test["bpp"], test["psnr"])


def write_page(name: str, lines: list[str]) -> None:
    """Write ``bench/results/NAME`` (the page's lines) and show it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def measure(codec, images: dict[str, np.ndarray], with_msssim: bool) -> list[dict]:
    """One row per image for ``codec``: real bytes, SSE, MS-SSIM (optional) and encode/decode seconds."""
    warm = next(iter(images.values()))[:64, :64]
    codec.decode(codec.encode(np.ascontiguousarray(warm)))  # load weights, first-call set-up: not timed
    rows = []
    for name, image in images.items():
        t0 = time.perf_counter()
        data = codec.encode(image)
        t1 = time.perf_counter()
        decoded = codec.decode(data)
        t2 = time.perf_counter()
        if decoded.shape != image.shape:
            raise RuntimeError(f"{codec.name} on {name}: decoded shape {decoded.shape} != {image.shape}")
        rows.append({
            "image": name, "candidate": codec.name, "family": codec.family, "bytes": len(data),
            "pixels": image.shape[0] * image.shape[1], "sse": sse(image, decoded),
            "msssim": msssim_rgb(image, decoded) if with_msssim else np.nan,
            "encode_s": t1 - t0, "decode_s": t2 - t1,
        })
    return rows


def summarise(rows: pd.DataFrame) -> dict:
    """The set-level bpp, aggregate PSNR, pixel-weighted MS-SSIM and seconds per megapixel of ``measure`` rows."""
    pixels = int(rows["pixels"].sum())
    mp = pixels / 1e6
    ms = rows["msssim"].to_numpy()
    return {
        "bpp": bpp(int(rows["bytes"].sum()), pixels),
        "psnr": aggregate_psnr(float(rows["sse"].sum()), pixels),
        "msssim": weighted_msssim(ms, rows["pixels"].to_numpy()) if not np.isnan(ms).any() else np.nan,
        "enc_s_per_mp": rows["encode_s"].sum() / mp,
        "dec_s_per_mp": rows["decode_s"].sum() / mp,
    }
