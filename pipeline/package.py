"""Package a submission folder from an allocation.

::

    submission/
      decoder/          decode.py (+ models/ source and weights/, only if a learned
                        candidate was chosen): everything that decodes the images
      images/           <image stem>.<ext>: the chosen cell's bitstream, byte for byte
      manifest.json     the choice, why (allocation certificate), RD table hash,
                        versions, decoder size

The folder is built under a temporary name and renamed into place, so a
``submission/`` that exists is always complete.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from importlib import metadata
from pathlib import Path

import pandas as pd
from PIL import features

import allocate

from . import atomic, decode_program
from .cache import CellStore
from .codecs import learned
from .errors import PipelineError

MANIFEST = "manifest.json"
DISTRIBUTIONS = ("clicpack", "numpy", "pillow", "torch", "compressai")
PILLOW_LIBRARIES = ("jpg", "webp", "avif", "jpg_2000", "zlib")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


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


def write_decoder(folder: Path, candidates: list[str]) -> None:
    """The decode program, plus the learned decoder and its weights if any candidate needs them."""
    folder.mkdir(parents=True)
    shutil.copyfile(decode_program.__file__, folder / "decode.py")
    weights = learned.weight_files(candidates)
    if not weights:
        return
    shutil.copytree(
        learned.models_source(), folder / "models",
        ignore=shutil.ignore_patterns("__pycache__", "weights", "*.safetensors", "*.pyc"),
    )
    (folder / "weights").mkdir()
    for path in weights:
        shutil.copyfile(path, folder / "weights" / path.name)


def write_images(folder: Path, chosen: pd.DataFrame, store: CellStore) -> dict[str, str]:
    """Copy each chosen bitstream as ``<image>.<ext>``; return image -> file name."""
    folder.mkdir(parents=True)
    files = {}
    for image, candidate in zip(chosen["image"], chosen["candidate"]):
        source = store.bitstream(image, candidate)
        files[image] = f"{image}{source.suffix}"
        shutil.copyfile(source, folder / files[image])
    return files


def package(
    dest: Path, allocation: allocate.Allocation, store: CellStore, rd_table: Path, request: dict
) -> dict:
    """Build ``dest`` (the submission folder) from an allocation; return its manifest.

    ``request`` describes what was asked (ladder, mode, budget or targets) and is
    recorded verbatim beside the allocation's certificate.
    """
    chosen = allocation.chosen.sort_values("image")
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = atomic.temp_sibling(dest)
    try:
        write_decoder(build / "decoder", chosen["candidate"].tolist())
        files = write_images(build / "images", chosen, store)
        manifest = {
            "request": request,
            "allocation": allocation.summary(),
            "images": [
                {
                    "image": row.image, "file": files[row.image], "candidate": row.candidate,
                    "family": row.family, "rate_label": row.rate_label, "bytes": int(row.bytes),
                    "pixels": int(row.pixels), "sse": float(row.sse), "msssim": float(row.msssim),
                }
                for row in chosen.itertuples()
            ],
            "images_bytes": folder_bytes(build / "images"),
            "decoder_bytes": folder_bytes(build / "decoder"),
            "rd_table": {"file": str(rd_table), "sha256": sha256_file(rd_table)},
            "versions": versions(),
        }
        atomic.write_text(build / MANIFEST, json.dumps(manifest, indent=1))
        atomic.replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest


def read_manifest(submission: Path) -> dict:
    """The manifest of a packaged submission (PipelineError if it has none)."""
    try:
        return json.loads((submission / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{submission}: not a packaged submission ({exc})") from None
