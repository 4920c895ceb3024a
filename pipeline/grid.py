"""Encode grid: every image × every candidate → one cached bitstream + one RD row.

Workers get an image path and a candidate name (never arrays or codec
objects); they load the image, encode, decode the bytes exactly as the
packaged decoder will (a learned file from the latent it codes: :func:`_decode`),
measure the decoded image with ``eval.metrics`` and store the cell.  Finished
cells are skipped, so a killed run resumes where it stopped.  The RD table is
assembled from the cell records at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from eval.images import by_stem, load_rgb8
from eval.metrics import msssim_scorer, sse

from .cache import COLUMNS, CellStore, dataset_key
from .codecs import get_codec
from .codecs.base import Codec
from .errors import PipelineError
from .parallel import Jobs, run_tasks


@dataclass(frozen=True)
class GridResult:
    """The RD table of a grid run, how many cells this run encoded, how many of the full
    grid's cells it left unencoded (the adaptive search's skips; 0 for a full grid), and
    how they were chosen (``pipeline.search``)."""

    table: pd.DataFrame
    store: CellStore
    encoded: int
    skipped: int = 0
    search: str = "full grid"


@lru_cache(maxsize=2)
def _original(path: Path) -> np.ndarray:
    """The image as H×W×3 uint8 (tasks are image-major, so a worker reuses it)."""
    return load_rgb8(path)


@lru_cache(maxsize=2)
def _msssim_of(path: Path) -> Callable[[np.ndarray], float]:
    """MS-SSIM against this original, its half of the work done once per worker."""
    return msssim_scorer(_original(path))


def _coded(candidate: str, image_path: Path, work: Callable[[], object]) -> object:
    """``work()``, with a codec's failure turned into one line naming the cell."""
    try:
        return work()
    except (ValueError, OSError, RuntimeError) as exc:
        raise PipelineError(f"{candidate} failed on {image_path.name}: {exc}") from None


def _encode(codec: Codec, original: np.ndarray) -> tuple[bytes, object]:
    """The file, and what :func:`_decode` decodes: the file, or a learned codec's file with the
    integer latent it coded (``models.codec.Coded``)."""
    code = getattr(codec, "code", None)
    if code is None:
        data = codec.encode(original)
        return data, data
    coded = code(original)
    return coded.data, coded


def _decode(codec: Codec, encoded: object) -> tuple[np.ndarray, str | None]:
    """The decoded image and, for a learned codec, the digest of its integer latent (kept in the
    record, so that packaging a chosen cell need not entropy-decode it).  A learned image is
    synthesised from the latent the encoder coded, by the packaged decoder's own code: entropy
    decoding is exact in integers and gives that latent back (verification checks it on every
    chosen cell), and at high rates it takes longer than the synthesis."""
    synthesised = getattr(codec, "synthesised", None)
    return synthesised(encoded) if synthesised is not None else (codec.decode(encoded), None)


def encode_cell(root: Path, image_path: Path, candidate: str, with_msssim: bool = True) -> dict:
    """Encode, decode and measure one cell; store it; return its record.

    ``with_msssim=False`` leaves the record's MS-SSIM empty (``None``): most of a cell's
    measuring time, and read only by MS-SSIM objectives and binding transparent targets
    (:func:`measure_msssim` fills it in later if one does).
    """
    codec = get_codec(candidate)
    original = _original(image_path)
    start = time.perf_counter()
    data, encoded = _coded(candidate, image_path, lambda: _encode(codec, original))
    enc_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded, latent = _coded(candidate, image_path, lambda: _decode(codec, encoded))
    dec_s = time.perf_counter() - start
    height, width = original.shape[:2]
    record = {
        "image": image_path.stem, "candidate": candidate, "family": codec.family,
        "rate_label": codec.rate_label, "pixels": width * height, "width": width,
        "height": height, "sse": sse(original, decoded),
        "msssim": _msssim_of(image_path)(decoded) if with_msssim else None,
        "enc_s": enc_s, "dec_s": dec_s, "fingerprint": codec.fingerprint, **({"latent": latent} if latent else {}),
    }
    return CellStore(root).save(record, data)


def measure_msssim(root: Path, image_path: Path, candidate: str) -> dict:
    """Fill in a finished cell's MS-SSIM: decode its cached bitstream, measure, store the record."""
    store = CellStore(root)
    path = store.bitstream(image_path.stem, candidate)
    decoded = _coded(candidate, image_path, lambda: get_codec(candidate).decode(path.read_bytes()))
    return store.update(image_path.stem, candidate, msssim=_msssim_of(image_path)(decoded))


Cell = tuple[Path, str]  # (image path, candidate name)


def fill_cells(store: CellStore, cells: list[Cell], n_jobs: Jobs, with_msssim: bool = True) -> tuple[list[dict], int]:
    """Encode every cell of ``cells`` that is not finished in ``store`` and, ``with_msssim``,
    measure the MS-SSIM of finished cells stored without one.  Returns the records of all
    ``cells`` (in order) and how many cells were encoded here."""
    prints = {name: get_codec(name).fingerprint for name in dict.fromkeys(name for _, name in cells)}
    records = {(path.stem, name): store.load(path.stem, name, prints[name]) for path, name in cells}
    todo = [(store.root, path, name, with_msssim) for path, name in cells if records[(path.stem, name)] is None]
    unmeasured = [(store.root, path, name) for path, name in cells
                  if with_msssim and (r := records[(path.stem, name)]) is not None and r.get("msssim") is None]
    for path in dict.fromkeys(path for _, path, *_ in todo):
        load_rgb8(path)  # a bad image fails now, in one line, not hours into the run
    done = len(records) - len(todo) - len(unmeasured)
    for work, tasks, desc in ((encode_cell, todo, "encode grid"), (measure_msssim, unmeasured, "MS-SSIM of cached cells")):
        for record in run_tasks(work, tasks, n_jobs, desc, done=done) if tasks else ():
            records[(record["image"], record["candidate"])] = record
        done += len(tasks)
    if any(r is None for r in records.values()):
        raise PipelineError(f"grid incomplete in {store.root}: a cell vanished while running")
    return list(records.values()), len(todo)


def rd_table(records: list[dict], with_msssim: bool = True) -> pd.DataFrame:
    """The RD table of cell records: MS-SSIM empty where a record has none, and everywhere
    unless ``with_msssim`` (so that the table does not depend on what earlier runs measured)."""
    table = pd.DataFrame(records, columns=COLUMNS).astype({"msssim": float})
    return table if with_msssim else table.assign(msssim=float("nan"))


def run_grid(
    images: list[Path], candidates: list[str], cache: Path, n_jobs: Jobs = 2, with_msssim: bool = True
) -> GridResult:
    """Fill every missing cell of ``images × candidates`` and return the RD table.

    The cells live in ``cache/<dataset key>``: a key of the images' names and contents.
    ``n_jobs``: local worker processes, or a dask ``Client`` to run the cells on its cluster.
    """
    if not candidates:
        raise PipelineError("no candidates to encode")
    store = open_store(images, cache)
    records, encoded = fill_cells(store, [(path, name) for path in images for name in candidates], n_jobs, with_msssim)
    return GridResult(rd_table(records, with_msssim), store, encoded)


def open_store(images: list[Path], cache: Path) -> CellStore:
    """The cache folder of this image set (images are keyed by stem: two with one stem are refused)."""
    by_stem(images)
    return CellStore(cache / dataset_key(images))
