"""Encode grid: every image × every candidate → one cached bitstream + one RD row.

Workers get an image path and a candidate name (never arrays or codec
objects); they load the image, encode, decode the bytes exactly as the
packaged decoder will, measure the decoded image with ``eval.metrics`` and
store the cell.  Finished cells are skipped, so a killed run resumes where it
stopped.  The RD table is assembled from the cell records at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from eval.images import by_stem, load_rgb8
from eval.metrics import msssim_rgb, sse

from .cache import COLUMNS, CellStore, dataset_key
from .codecs import get_codec
from .errors import PipelineError
from .parallel import Jobs, run_tasks


@dataclass(frozen=True)
class GridResult:
    """The RD table of a grid run and how many cells this run encoded."""

    table: pd.DataFrame
    store: CellStore
    encoded: int


@lru_cache(maxsize=2)
def _original(path: Path) -> np.ndarray:
    """The image as H×W×3 uint8 (tasks are image-major, so a worker reuses it)."""
    return load_rgb8(path)


def encode_cell(root: Path, image_path: Path, candidate: str) -> dict:
    """Encode, decode and measure one cell; store it; return its record."""
    codec = get_codec(candidate)
    original = _original(image_path)
    try:
        start = time.perf_counter()
        data = codec.encode(original)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = codec.decode(data)
        dec_s = time.perf_counter() - start
    except (ValueError, OSError, RuntimeError) as exc:
        raise PipelineError(f"{candidate} failed on {image_path.name}: {exc}") from None
    height, width = original.shape[:2]
    record = {
        "image": image_path.stem, "candidate": candidate, "family": codec.family,
        "rate_label": codec.rate_label, "pixels": width * height, "width": width,
        "height": height, "sse": sse(original, decoded), "msssim": msssim_rgb(original, decoded),
        "enc_s": enc_s, "dec_s": dec_s, "fingerprint": codec.fingerprint,
    }
    return CellStore(root).save(record, data)


def run_grid(
    images: list[Path], candidates: list[str], cache: Path, n_jobs: Jobs = 2
) -> GridResult:
    """Fill every missing cell of ``images × candidates`` and return the RD table.

    The cells live in ``cache/<dataset key>``: a key of the images' names and contents.
    ``n_jobs``: local worker processes, or a dask ``Client`` to run the cells on its cluster.
    """
    if not candidates:
        raise PipelineError("no candidates to encode")
    by_stem(images)  # cells are keyed by image stem
    store = CellStore(cache / dataset_key(images))
    cells = [(path, name) for path in images for name in candidates]
    prints = {name: get_codec(name).fingerprint for name in candidates}
    todo = [
        (store.root, path, name) for path, name in cells
        if store.load(path.stem, name, prints[name]) is None
    ]  # fmt: skip
    for path in dict.fromkeys(path for _, path, _ in todo):
        load_rgb8(path)  # a bad image fails now, in one line, not hours into the run
    for _ in run_tasks(encode_cell, todo, n_jobs, "encode grid", done=len(cells) - len(todo)):
        pass
    records = [store.load(path.stem, name, prints[name]) for path, name in cells]
    if any(r is None for r in records):
        raise PipelineError(f"grid incomplete in {store.root}: a cell vanished while running")
    return GridResult(pd.DataFrame(records, columns=COLUMNS), store, encoded=len(todo))
