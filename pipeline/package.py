"""Package a submission folder from an allocation.

::

    submission/
      decoder/          decode.py (+ runtime/, the learned decoding runtime, ladders/ and a
                        decoder-only copy of the weights, only if a learned candidate was
                        chosen): everything that decodes the images, with torch but no CompressAI
      images/           <image stem>.<ext>: the chosen cell's bitstream, byte for byte
      manifest.json     the choice, why (allocation certificate), RD table hash,
                        versions, decoder size

The folder is built under a temporary name and renamed into place, so a
``submission/`` that exists is always complete.  Its content is a pure function of
the allocation, the chosen bitstreams, the decoder and the software versions: no
timestamps, timings or absolute paths, so a run killed and resumed packages the
same bytes as an uninterrupted one.

Names read from the RD table and the manifest must be plain file names
(:mod:`pipeline.paths`): nothing is ever written or read outside the folders.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path

import pandas as pd
from PIL import features

import allocate

from eval import atomic

from . import decode_program
from .cache import CellStore
from .codecs import command, learned
from .errors import PipelineError
from .parallel import GRID_TORCH_THREADS
from .paths import is_plain_name, plain_name

MANIFEST = "manifest.json"
DISTRIBUTIONS = ("clicpack", "numpy", "pillow", "torch", "compressai")
PILLOW_LIBRARIES = ("jpg", "webp", "avif", "jpg_2000", "zlib")
TIMING_COLUMNS = ("enc_s", "dec_s")  # RD table columns left out of its manifest hash


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def table_hash(rd_table: Path) -> str:
    """SHA-256 of the RD table's text without its timing columns (which vary run to run)."""
    table = pd.read_csv(rd_table, dtype=str, keep_default_na=False)
    values = table.drop(columns=[c for c in TIMING_COLUMNS if c in table.columns])
    return hashlib.sha256(values.to_csv(index=False).encode("utf-8")).hexdigest()


def versions() -> dict[str, str | None]:
    """Python, the decoding packages and Pillow's codec libraries."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    found |= {f"pillow-{lib}": features.version(lib) for lib in PILLOW_LIBRARIES}
    return found


def platform_record() -> dict[str, str]:
    """What bit-exact pixels depend on: the machine, its CPU, torch's kernels (instruction set).

    Latents do not depend on any of it (``models.runtime.integer_prior``); where this record differs,
    verification accepts pixels rounded differently by the synthesis (``pipeline.verify``).
    """
    import torch

    return {
        "machine": platform.machine(), "system": platform.system(), "processor": cpu_name(),
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_isa": os.environ.get("DNNL_MAX_CPU_ISA", "default"),
        "torch_threads_per_decode": GRID_TORCH_THREADS,
    }


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def latent_digests(chosen: pd.DataFrame, store: CellStore) -> dict[str, str]:
    """image -> latent digest of every chosen learned bitstream (what any decoder must reproduce):
    the one the grid's decode recorded, or (a cell cached before records kept it) decoded now."""
    digests = {}
    for image, candidate in zip(chosen["image"], chosen["candidate"]):
        if learned.is_learned(candidate):
            recorded = store.load(image, candidate).get("latent")
            if recorded is None:
                from models.codec import latent_digest  # torch: only for a learned cell without one

                recorded = latent_digest(store.bitstream(image, candidate).read_bytes())
            digests[image] = recorded
    return digests


GUARANTEE = {
    "latents": "learned latents are decoded by an integer probability path: identical on every machine",
    "pixels": "bit-exact where 'platform' matches (decode.py --threads 1); elsewhere, or on other thread "
              "counts, within the float synthesis's rounding (clic verify accepts a per-image PSNR change "
              "up to its stated tolerance)",
}


def write_decoder(folder: Path, candidates: list[str]) -> None:
    """The decode program, plus the decoder programs of command-line codecs and the learned
    decoder with its weights if any candidate needs them."""
    folder.mkdir(parents=True)
    shutil.copyfile(decode_program.__file__, folder / "decode.py")
    command.write_decoders(folder, candidates)
    weights = learned.weight_files(candidates)
    if not weights:
        return
    from models.weights import write_decoder_weights  # torch: only when a learned candidate was chosen

    shutil.copytree(learned.runtime_source(), folder / "runtime", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "ladders").mkdir()
    for path in learned.ladder_files(candidates):  # exactly the ladders in use
        shutil.copyfile(path, folder / "ladders" / path.name)
    (folder / "weights").mkdir()
    for path in weights:
        write_decoder_weights(path, folder / "weights" / path.name)


def write_images(folder: Path, chosen: pd.DataFrame, store: CellStore) -> dict[str, str]:
    """Copy each chosen bitstream as ``<image>.<ext>``; return image -> file name."""
    folder.mkdir(parents=True)
    files = {}
    for image, candidate in zip(chosen["image"], chosen["candidate"]):
        plain_name(image, "image name", "RD table")
        source = store.bitstream(image, candidate)
        files[image] = f"{image}{source.suffix}"
        shutil.copyfile(source, folder / files[image])
    return files


def package(
    dest: Path, allocation: allocate.Allocation, store: CellStore, rd_table: Path, request: dict,
    decoder_candidates: list[str] | None = None, skipped_cells: int = 0, search: str = "full grid",
) -> dict:
    """Build ``dest`` (the submission folder) from an allocation; return its manifest.

    ``request`` describes what was asked (ladder, mode, budget or targets) and is
    recorded verbatim beside the allocation's certificate.  ``decoder_candidates``: what
    the decoder must decode (default: the chosen candidates; several targets pass the
    union of theirs, so that they share one decoder).  ``skipped_cells``: cells of the full
    grid that the adaptive search left unencoded, and ``search`` how (:mod:`pipeline.search`).
    """
    chosen = allocation.chosen.sort_values("image")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_debris(dest.parent)  # temporary files and folders of killed runs
    build = atomic.temp_sibling(dest)
    try:
        write_decoder(build / "decoder", decoder_candidates or chosen["candidate"].tolist())
        files = write_images(build / "images", chosen, store)
        latents = latent_digests(chosen, store)
        manifest = {
            "request": request,
            "allocation": {k: measured(v) for k, v in allocation.summary().items() if k != "wall_s"},
            "images": [
                {
                    "image": row.image, "file": files[row.image], "candidate": row.candidate,
                    "family": row.family, "rate_label": row.rate_label, "bytes": int(row.bytes),
                    "pixels": int(row.pixels), "sse": float(row.sse), "msssim": measured(row.msssim),
                    **({"latent": latents[row.image]} if row.image in latents else {}),
                }
                for row in chosen.itertuples()
            ],
            "images_bytes": folder_bytes(build / "images"),
            "decoder_bytes": folder_bytes(build / "decoder"),
            "rd_table": {
                "file": rd_table.name, "sha256": table_hash(rd_table),
                "hashed": f"the CSV text without the timing columns {', '.join(TIMING_COLUMNS)}",
                "skipped_cells": skipped_cells, "search": search,
            },
            "versions": versions(),
            "platform": platform_record(),
            "guarantee": GUARANTEE,
        }
        atomic.write_text(build / MANIFEST, json.dumps(manifest, indent=1))
        atomic.replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest


def measured(value: object) -> object:
    """``value`` for JSON: None for a number not measured (NaN; a budget run leaves its chosen
    cells' MS-SSIM to verification, which scores the decoded package)."""
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    return value


def read_manifest(submission: Path) -> dict:
    """The manifest of a packaged submission, checked (PipelineError if it has none or a bad one).

    Every image entry needs a plain ``image`` name and a plain ``file`` name that exists
    in ``images/``, and numeric ``bytes`` and ``sse``; names are never joined to a folder
    unchecked.
    """
    path = submission / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{submission}: not a packaged submission ({exc})") from None
    entries = manifest.get("images") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PipelineError(f"{path}: no list of images")
    seen = set()
    for i, cell in enumerate(entries):
        if not isinstance(cell, dict):
            raise PipelineError(f"{path}: images[{i}] is not an object")
        for key in ("image", "file"):
            if not is_plain_name(cell.get(key)):
                raise PipelineError(
                    f"{path}: images[{i}].{key} {cell.get(key)!r} is not a plain file name "
                    "(no folders, '..' or absolute paths)"
                )
        for key in ("bytes", "sse"):
            if not isinstance(cell.get(key), (int, float)) or isinstance(cell.get(key), bool):
                raise PipelineError(f"{path}: images[{i}].{key} is not a number")
        if cell["image"] in seen:
            raise PipelineError(f"{path}: image {cell['image']!r} listed twice")
        seen.add(cell["image"])
        if not (submission / "images" / cell["file"]).is_file():
            raise PipelineError(f"{path}: images[{i}].file {cell['file']!r} not found in {submission / 'images'}")
    return manifest
