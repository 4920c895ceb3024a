"""Verify a submission the way a challenge server would: from the package alone.

The packaged decoder runs in a fresh, isolated Python process (``-I``: no
PYTHONPATH, no user site, not even its own folder on the path unless it puts
it there).  Every score is computed from the PNGs it writes, never from a
forward pass, and each image's SSE (and size) must equal what the RD table
recorded for the chosen cell: otherwise the allocation was made on numbers the
submission does not deliver.

The learned latents must be identical on any machine, since their probability path is
integer (``models.runtime.integer_prior``): every learned image's latent digest must equal the
encoder's, otherwise the stream does not decode there (an error naming the image).  Only
the floating-point synthesis may round differently on another machine (another CPU
instruction set, torch build or device, or thread count), so each image's PSNR must be
within :data:`PSNR_TOLERANCE_DB` of the recorded one; the result says whether the pixels
were exact, and whether this is the platform that encoded.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eval import atomic
from eval.score import Pair, Scores, score_folders, score_pair

from .errors import PipelineError
from .package import folder_bytes, platform_record, read_manifest
from .parallel import GRID_TORCH_THREADS, Jobs, run_tasks
from .paths import check_decoded_folder


# Largest per-image PSNR change accepted on a machine other than the encoder's, with
# identical latents (measured: at most 5e-5 dB, pixels within one level; docs/reliability.md).
PSNR_TOLERANCE_DB = 0.01
LATENTS_PREFIX = ".latents-"  # the decoder's --latents files, in the decoded folder until read


@dataclass(frozen=True)
class Agreement:
    """How the decode matched the encoder's record: ``exact`` (same SSE everywhere), or identical
    latents with pixels rounded differently (the largest per-image PSNR change, in dB);
    ``same_platform``: decoded where the package was made (``package.platform_record``)."""

    exact: bool
    same_platform: bool
    latents_checked: int
    max_psnr_change_db: float

    def describe(self) -> str:
        latents = f"{self.latents_checked} learned latents identical; " if self.latents_checked else ""
        where = "the encoding platform" if self.same_platform else "another platform"
        if self.exact:
            return f"{latents}SSE matches the RD table ({where})"
        return (f"{latents}pixels rounded differently on {where} (largest per-image PSNR change "
                f"{self.max_psnr_change_db:.2g} dB, tolerance {PSNR_TOLERANCE_DB} dB)")


@dataclass(frozen=True)
class Verification:
    """Scores of the decoded submission and what the leaderboard needs besides."""

    scores: Scores
    decoding_ms: float
    decoder_bytes: int
    manifest: dict
    agreement: Agreement


def run_decoder(submission: Path, decoded: Path) -> float:
    """Decode ``submission/images`` into ``decoded`` (emptied first); return wall time in ms."""
    shutil.rmtree(decoded, ignore_errors=True)
    return decoder_process(submission, submission / "images", decoded)


def decoder_process(submission: Path, files: Path, decoded: Path, jobs: int | None = None) -> float:
    """The packaged decoder on the folder ``files``, into ``decoded``, in a fresh process (ms).

    ``jobs``: its worker processes (default: the decoder's own, one per core), each on the
    grid's one torch thread, so that on the encoding machine the pixels are the grid's bit for
    bit (the synthesis may round differently on other thread counts; the latents never do).  Also
    run per shard of the images on dask workers, one process each (:mod:`pipeline.distributed`).
    """
    submission, files, decoded = submission.absolute(), files.absolute(), decoded.absolute()  # cwd is the package
    command = [
        sys.executable, "-I", str(submission / "decoder" / "decode.py"),
        *(["--jobs", str(jobs)] if jobs else []), "--threads", str(GRID_TORCH_THREADS), "--latents", str(decoded / f"{LATENTS_PREFIX}{files.name}.json"),
        str(files), str(decoded),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=submission, capture_output=True, text=True)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"packaged decoder failed (exit {done.returncode}): {last}")
    return elapsed_ms


def read_latents(decoded: Path) -> dict[str, str]:
    """The latent digests the decoder processes wrote into ``decoded`` (removed once read)."""
    digests: dict[str, str] = {}
    for path in sorted(decoded.glob(f"{LATENTS_PREFIX}*.json")):
        digests |= json.loads(path.read_text())
        path.unlink()
    return digests


def _psnr(sse: float, pixels: int) -> float:
    return math.inf if sse == 0 else 10 * math.log10(255**2 * 3 * pixels / sse)


def check_against_manifest(scores: Scores, manifest: dict, latents: dict[str, str], same_platform: bool) -> Agreement:
    """PipelineError unless the decode delivers what the RD table recorded: the image set,
    every file's size, every learned image's latent digest, and each image's PSNR within
    :data:`PSNR_TOLERANCE_DB` of the recorded one (the :class:`Agreement` says if exact)."""
    measured = scores.per_image.set_index("image")
    listed = {cell["image"] for cell in manifest["images"]}
    if listed != set(measured.index):
        odd = sorted(listed ^ set(measured.index))
        raise PipelineError(f"the manifest and the original images differ on image {odd[0]!r}")
    for cell in manifest["images"]:
        expected = cell.get("latent")
        if expected is not None and latents.get(cell["image"]) != expected:
            raise PipelineError(
                f"{cell['image']} ({cell['candidate']}): decoded latent {latents.get(cell['image'])} differs from "
                f"the encoder's {expected}: the stream does not decode correctly here"
            )
    changes = {
        cell["image"]: abs(_psnr(measured.at[cell["image"], "sse"], cell["pixels"]) - _psnr(cell["sse"], cell["pixels"]))
        for cell in manifest["images"]
        if measured.at[cell["image"], "sse"] != cell["sse"]
    }
    wrong = [
        f"{cell['image']} ({cell['candidate']}): SSE {measured.at[cell['image'], 'sse']:.0f} "
        f"decoded vs {cell['sse']:.0f} recorded, {measured.at[cell['image'], 'bytes']} bytes "
        f"vs {cell['bytes']}"
        for cell in manifest["images"]
        if measured.at[cell["image"], "bytes"] != cell["bytes"]
        or not changes.get(cell["image"], 0.0) <= PSNR_TOLERANCE_DB
    ]
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise PipelineError(f"decoded submission differs from the RD table: {wrong[0]}{more}")
    checked = sum(cell.get("latent") is not None for cell in manifest["images"])
    return Agreement(not changes, same_platform, checked, max(changes.values(), default=0.0))


def scored(originals: Path, decoded: Path, n_jobs: Jobs, compressed: Path | None = None) -> Scores:
    """``eval.score.score_folders``, its images scored on the grid's workers (``n_jobs``
    processes, or a dask cluster), each on one torch thread as the grid measured its cells
    (``run_tasks`` pins the thread, in this process too)."""

    def on_workers(pairs: list[Pair]):
        return run_tasks(score_pair, pairs, n_jobs, "scoring")

    return score_folders(originals, decoded, compressed, on_workers)


def verify(
    submission: Path, originals: Path, decoded: Path,
    run_decoder: Callable[[Path, Path], float] = run_decoder, n_jobs: Jobs = 1,
) -> Verification:
    """Decode the package in a fresh process, score the PNGs (on ``n_jobs`` workers: see
    :func:`scored`), check them against the table.

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
        latents = read_latents(staging)
        atomic.replace_dir(staging, decoded)
    except BaseException:
        shutil.rmtree(decoded, ignore_errors=True)  # no older decode passes for this one
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    scores = scored(originals, decoded, n_jobs, submission / "images")
    agreement = check_against_manifest(scores, manifest, latents, manifest.get("platform") == platform_record())
    return Verification(scores, decoding_ms, folder_bytes(submission / "decoder"), manifest, agreement)
