"""The whole submission run: encode → allocate → package → verify → report, timed per stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import allocate
from eval.images import list_images

from . import atomic
from .allocation import Target, check_options, request, solve
from .codecs import ladder_candidates
from .grid import GridResult, run_grid
from .package import package
from .report import ReportFiles, report
from .verify import Verification, verify


@dataclass(frozen=True)
class Settings:
    """Everything a submission run needs (the CLI's options, resolved)."""

    images: Path
    out: Path
    cache: Path
    ladder: str
    target: Target
    objective: str = "sse"
    solver: str = "exact"
    n_jobs: int = 2
    entry: str | None = None  # leaderboard entry name; default names ladder, mode and budget
    leaderboard: Path | None = None  # default: <out>/leaderboard.csv

    def __post_init__(self) -> None:
        check_options(self.objective, self.solver)

    @property
    def entry_name(self) -> str:
        return self.entry or f"clicpack {self.ladder} {self.target.describe()}"


@dataclass
class Outcome:
    """What a run produced, with the wall time of each stage in seconds."""

    grid: GridResult
    table_path: Path
    allocation: object
    verification: Verification
    files: ReportFiles
    stage_s: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(stage_s: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    stage_s[stage] = time.perf_counter() - start


def encode(images: Path, ladder: str, cache: Path, out: Path, n_jobs: int) -> tuple[GridResult, Path]:
    """Fill the encode grid and write its RD table to ``out/rd.csv``."""
    grid = run_grid(list_images(images), ladder_candidates(ladder), cache, n_jobs)
    table_path = out / "rd.csv"
    atomic.write_csv(table_path, grid.table)
    return grid, table_path


def run_submission(s: Settings, log: Callable[[str], None] = print) -> Outcome:
    """Run every stage; each raises its own one-line error on failure."""
    stage_s: dict[str, float] = {}
    with timed(stage_s, "encode"):
        grid, table_path = encode(s.images, s.ladder, s.cache, s.out, s.n_jobs)
    log(f"encode: {len(grid.table)} cells ({grid.encoded} encoded now) -> {table_path}")
    with timed(stage_s, "allocate"):
        allocation = solve(allocate.load_rd_table(table_path), s.target, s.objective, s.solver)
    log(f"allocate: {s.target.describe()}: {allocation.total_bytes} bytes, {allocation.bpp:.4f} bpp, "
        f"gap {allocation.gap:g} ({allocation.solver}, {allocation.wall_s:.2f} s)")
    submission = s.out / "submission"
    with timed(stage_s, "package"):
        manifest = package(submission, allocation, grid.store, table_path,
                           request(s.ladder, s.target, s.objective, s.solver))
    log(f"package: {submission} (images {manifest['images_bytes']} B, decoder {manifest['decoder_bytes']} B)")
    with timed(stage_s, "verify"):
        verification = verify(submission, s.images, s.out / "decoded")
    scores = verification.scores
    log(f"verify: PSNR {scores.psnr:.4f} dB, MS-SSIM {scores.msssim:.6f}, {scores.bpp:.4f} bpp, "
        f"decoded in {verification.decoding_ms:.0f} ms; SSE matches the RD table")
    with timed(stage_s, "report"):
        files = report(s.out, grid.table, verification, s.entry_name,
                       s.leaderboard or s.out / "leaderboard.csv")
    log(f"report: {files.leaderboard}, {files.per_image}, {files.plot}")
    return Outcome(grid, table_path, allocation, verification, files, stage_s)
