"""Reliability, faults: SIGKILL at several moments, disk full, read-only output, two runs on one cache.

The kill test runs ``clic submission`` as a real process on three Kodak crops and
eight classical candidates, kills it with SIGKILL at four moments (mid-encode, right
after the RD table is written, during verification, and, on a seeded random delay),
reruns it, and compares the final package byte for byte with an uninterrupted run's.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from typer.testing import CliRunner

import pipeline.cache
from corpus import CROPS
from eval import atomic
from pipeline.allocation import Budget
from pipeline.cache import CellStore
from pipeline.cli import app
from pipeline.grid import run_grid
from pipeline.run import Settings, run_submission

torch.set_num_threads(1)
RUNNER = CliRunner()
CANDIDATES = "jpeg-q8,jpeg-q35,webp-q15,webp-q65,avif-q22,avif-q54,j2k-r120,j2k-r30"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def clic(*args: str) -> list[str]:
    return [sys.executable, "-c", "from pipeline.cli import app; app()", *map(str, args)]


def submission_args(images: Path, out: Path, cache: Path) -> list[str]:
    return clic("submission", "--images", images, "--out", out, "--cache", cache, "--ladder", CANDIDATES,
                "--bpp", "1.0", "--n-jobs", "1")


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def finished_cells(cache: Path) -> dict[Path, int]:
    """Record files of finished cells (a record exists only once complete) -> mtime."""
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")}


def run_and_kill(args: list[str], when, log: Path, timeout: float = 300) -> bool:
    """Start ``args``; SIGKILL it as soon as ``when()`` holds. True if it was killed."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if when():
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return True
                assert time.monotonic() < deadline, "run took too long"
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log.read_text()
    return False


def consistent(cache: Path) -> None:
    """Every record in the cache describes a bitstream of exactly its size and hash."""
    for record_path in cache.rglob("*.json"):
        store = CellStore(record_path.parents[1])
        assert store.load(record_path.stem, record_path.parent.name) is not None, record_path


def test_sigkill_at_several_moments_then_rerun_gives_the_uninterrupted_package(images, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = submission_args(images, out, cache)
    rng = random.Random(6)
    moments = {
        "mid-encode": lambda: len(list(cache.rglob("*.json"))) >= 4,
        "RD table written": lambda: (out / "rd.csv").exists(),
        "verifying": lambda: any(out.glob(".decoded.*.tmp")) or (out / "decoded").exists(),
    }
    killed, reused = [], {}
    for moment, when in moments.items():
        if run_and_kill(args, when, tmp_path / f"{moment}.log"):
            killed.append(moment)
        consistent(cache)
        reused |= finished_cells(cache)
    # One more kill, a random delay after the run reports its encode stage (allocate .. report).
    delay, log, seen = rng.uniform(0.0, 1.5), tmp_path / "random.log", []

    def random_moment() -> bool:
        if not seen and "encode:" in log.read_text():
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > delay

    if run_and_kill(args, random_moment, log):
        killed.append(f"{delay:.2f} s after encoding")
    consistent(cache)
    reused |= finished_cells(cache)
    run_and_kill(args, lambda: False, tmp_path / "final.log")
    final_log = (tmp_path / "final.log").read_text()
    assert "SSE matches the RD table" in final_log
    assert len(killed) >= 3, killed  # the moments were hit, not raced past
    print("killed:", killed)
    # Every cell finished before a kill was reused, not encoded again.
    assert {p: p.stat().st_mtime_ns for p in reused} == reused
    assert "(0 encoded now)" in final_log
    # The package is byte for byte an uninterrupted run's (fresh cache, fresh output folder).
    reference = tmp_path / "reference"
    settings = Settings(images=images, out=reference, cache=tmp_path / "ref-cache", ladder=CANDIDATES,
                        target=Budget(bpp=1.0), n_jobs=1)
    run_submission(settings, log=lambda line: None)
    assert files(out / "submission") == files(reference / "submission")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # killed runs' debris cleared


def test_disk_full_is_one_line_and_leaves_no_partial_file(images, tmp_path, monkeypatch):
    """Every atomic write after the sixth fills the disk half-way through (ENOSPC)."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    real_open, writes = open, []

    class FullDisk(io.FileIO):
        def write(self, data):
            super().write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def filling_open(path, mode="r", *args, **kwargs):
        if "x" in mode:
            writes.append(path)
            if len(writes) > 6:
                return FullDisk(path, "xb")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", filling_open, raising=False)
    args = ["submission", "--images", str(images), "--out", str(out), "--cache", str(cache),
            "--ladder", CANDIDATES, "--bpp", "1.0", "--n-jobs", "1"]
    result = RUNNER.invoke(app, args)
    assert result.exit_code == 2 and result.exception is not None and "Traceback" not in result.output
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: [Errno 28] No space left on device: ") and ".tmp" not in err, err
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left behind"
    consistent(cache)
    assert len(list(cache.rglob("*.json"))) == 3  # writes 1-6: three cells (bitstream + record)
    assert not (out / "rd.csv").exists()
    monkeypatch.undo()
    done = run_grid(sorted(images.iterdir()), CANDIDATES.split(","), cache, n_jobs=1)
    assert done.encoded == 24 - 3  # the finished cells are kept


def test_file_size_limit_in_a_real_process_is_one_line_and_resumable(images, tmp_path):
    """RLIMIT_FSIZE makes the OS refuse writes past 1500 bytes (EFBIG), like a full disk."""
    out, cache = tmp_path / "out", tmp_path / "cache"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, resource.RLIM_INFINITY))

    args = clic("encode", "--images", images, "--out", out, "--cache", cache, "--ladder", CANDIDATES, "--n-jobs", "1")
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, preexec_fn=limit, timeout=300)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip().splitlines()[-1]
    assert err.startswith("error: [Errno 27] File too large: ") and ".tmp" not in err and "Traceback" not in done.stderr
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left behind"
    consistent(cache)
    before = finished_cells(cache)
    assert before, "some cells fit under the limit"
    grid = run_grid(sorted(images.iterdir()), CANDIDATES.split(","), cache, n_jobs=1)
    assert grid.encoded == 24 - len(before)
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_read_only_output_folder_is_one_line(images, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    args = ["encode", "--images", str(images), "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--ladder", "jpeg-q35", "--n-jobs", "1"]
    os.chmod(out, 0o555)
    try:
        if os.access(out, os.W_OK):  # root ignores permissions: the file system refuses instead
            real_open = open

            def read_only(path, mode="r", *a, **kw):
                if "x" in mode and Path(path).parent == out:
                    raise OSError(errno.EROFS, "Read-only file system", str(path))
                return real_open(path, mode, *a, **kw)

            monkeypatch.setattr(atomic, "open", read_only, raising=False)
            phrase = "Read-only file system"
        else:
            phrase = "Permission denied"
        result = RUNNER.invoke(app, args)
    finally:
        os.chmod(out, 0o755)
    assert result.exit_code == 2
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and phrase in err and str(out / "rd.csv") in err, err
    assert list(out.iterdir()) == []


def test_two_runs_on_one_cache_at_once_both_finish_and_agree(images, tmp_path):
    """A second process and this one fill the same cache concurrently (no lock: atomic,
    content-addressed files); both tables agree and every record matches its file."""
    cache = tmp_path / "cache"
    script = ("import sys; from pathlib import Path; from pipeline.grid import run_grid; "
              "g = run_grid(sorted(Path(sys.argv[1]).iterdir()), sys.argv[2].split(','), Path(sys.argv[3]), 1); "
              "g.table.drop(columns=['enc_s', 'dec_s']).to_csv(sys.argv[4], index=False)")
    other = subprocess.Popen([sys.executable, "-c", script, str(images), CANDIDATES, str(cache), str(tmp_path / "other.csv")],
                             env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(cache.rglob("*.json")) and other.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    mine = run_grid(sorted(images.iterdir()), CANDIDATES.split(","), cache, n_jobs=1)
    assert other.wait(timeout=300) == 0, other.stderr.read()
    theirs = pd.read_csv(tmp_path / "other.csv")
    pd.testing.assert_frame_equal(mine.table.drop(columns=["enc_s", "dec_s"]), theirs, check_dtype=False)
    assert 0 < mine.encoded < 24, "the runs did overlap"
    consistent(cache)
    assert not [p for p in cache.rglob(".*") if p.is_file()]
    for folder in mine.store.root.iterdir():  # deterministic codecs: one file per cell
        assert len([p for p in folder.iterdir() if p.suffix != ".json"]) == len(CROPS)


def test_interleaved_saves_of_one_cell_never_pair_a_record_with_another_file(tmp_path, monkeypatch):
    """Run A writes its bitstream, run B saves the whole cell, then A writes its record:
    the record in place must describe A's file (same size, other content: the hard case)."""
    store = CellStore(tmp_path)
    real_write_text, nested = atomic.write_text, []

    def b_saves_in_between(path, text):
        if not nested:
            nested.append("B")
            nested.append(store.save({"image": "x", "candidate": "jpeg-q8", "run": "B"}, b"\xff\xd8\xff" + b"B" * 50))
        real_write_text(path, text)

    monkeypatch.setattr(pipeline.cache.atomic, "write_text", b_saves_in_between)
    mine = store.save({"image": "x", "candidate": "jpeg-q8", "run": "A"}, b"\xff\xd8\xff" + b"A" * 50)
    monkeypatch.undo()
    loaded = store.load("x", "jpeg-q8")
    assert loaded == mine and loaded["run"] == "A"
    assert (tmp_path / "jpeg-q8" / loaded["file"]).read_bytes() == b"\xff\xd8\xff" + b"A" * 50
    assert nested[1]["file"] != loaded["file"]  # B's file is still there, under its own name
    assert (tmp_path / "jpeg-q8" / nested[1]["file"]).read_bytes() == b"\xff\xd8\xff" + b"B" * 50
    assert json.loads((tmp_path / "jpeg-q8" / "x.json").read_text())["run"] == "A"
