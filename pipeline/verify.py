"""Verify a submission the way a challenge server would: from the package alone.

The packaged decoder runs in a fresh, isolated Python process (``-I``: no
PYTHONPATH, no user site, not even its own folder on the path unless it puts
it there).  Every score is computed from the PNGs it writes, never from a
forward pass, and each image's SSE (and size) must equal what the RD table
recorded for the chosen cell: otherwise the allocation was made on numbers the
submission does not deliver.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval import atomic
from eval.score import Scores, score_folders

from .errors import PipelineError
from .package import folder_bytes, read_manifest
from .parallel import one_torch_thread
from .paths import check_decoded_folder


@dataclass(frozen=True)
class Verification:
    """Scores of the decoded submission and what the leaderboard needs besides."""

    scores: Scores
    decoding_ms: float
    decoder_bytes: int
    manifest: dict


def run_decoder(submission: Path, decoded: Path) -> float:
    """Decode ``submission/images`` into ``decoded`` (emptied first); return wall time in ms."""
    shutil.rmtree(decoded, ignore_errors=True)
    return decoder_process(submission, submission / "images", decoded)


def decoder_process(submission: Path, files: Path, decoded: Path, jobs: int | None = None) -> float:
    """The packaged decoder on the folder ``files``, into ``decoded``, in a fresh process (ms).

    ``jobs``: its worker processes (default: the decoder's own, one per core).  Also
    run per shard of the images on dask workers, one process each (:mod:`pipeline.distributed`).
    """
    submission, files, decoded = submission.absolute(), files.absolute(), decoded.absolute()  # cwd is the package
    command = [
        sys.executable, "-I", str(submission / "decoder" / "decode.py"),
        *(["--jobs", str(jobs)] if jobs else []), str(files), str(decoded),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=submission, capture_output=True, text=True)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"packaged decoder failed (exit {done.returncode}): {last}")
    return elapsed_ms


def check_against_manifest(scores: Scores, manifest: dict) -> None:
    """PipelineError unless every image's SSE and size are what its RD cell recorded."""
    measured = scores.per_image.set_index("image")
    listed = {cell["image"] for cell in manifest["images"]}
    if listed != set(measured.index):
        odd = sorted(listed ^ set(measured.index))
        raise PipelineError(f"the manifest and the original images differ on image {odd[0]!r}")
    wrong = [
        f"{cell['image']} ({cell['candidate']}): SSE {measured.at[cell['image'], 'sse']:.0f} "
        f"decoded vs {cell['sse']:.0f} recorded, {measured.at[cell['image'], 'bytes']} bytes "
        f"vs {cell['bytes']}"
        for cell in manifest["images"]
        if measured.at[cell["image"], "sse"] != cell["sse"]
        or measured.at[cell["image"], "bytes"] != cell["bytes"]
    ]
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise PipelineError(f"decoded submission differs from the RD table: {wrong[0]}{more}")


def verify(
    submission: Path, originals: Path, decoded: Path,
    run_decoder: Callable[[Path, Path], float] = run_decoder,
) -> Verification:
    """Decode the package in a fresh process, score the PNGs, check them against the table.

    ``run_decoder(submission, decoded) -> ms`` may be swapped for one that decodes
    on a cluster (:func:`pipeline.distributed.decode_on_cluster`).
    """
    manifest = read_manifest(submission)
    check_decoded_folder(decoded, originals, submission)
    # Decode into a fresh hidden folder, then rename it into place: ``decoded`` is always
    # one complete decode, and a decoder left running by a killed run writes elsewhere.
    decoded.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_debris(decoded.parent, decoded.name)
    staging = atomic.temp_sibling(decoded)
    try:
        decoding_ms = run_decoder(submission, staging)
        atomic.replace_dir(staging, decoded)
    except BaseException:
        shutil.rmtree(decoded, ignore_errors=True)  # no older decode passes for this one
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with one_torch_thread():  # as in the grid: metrics on one thread (2 shared cores)
        scores = score_folders(originals, decoded, compressed=submission / "images")
    check_against_manifest(scores, manifest)
    return Verification(scores, decoding_ms, folder_bytes(submission / "decoder"), manifest)
