"""The whole submission run: encode → allocate → package → verify → report, timed per stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import allocate
from eval import atomic
from eval.images import list_images

from .allocation import Target, check_options, request, solve
from .codecs import ladder_candidates, with_refinement
from .distributed import connect, decoder_for, prepare_workers
from .grid import GridResult, run_grid
from .package import package
from .parallel import Jobs
from .paths import check_layout
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
    refine: int = 0  # latent-refinement steps for learned candidates (models.refine); 0: off
    objective: str = "sse"
    solver: str = "exact"
    n_jobs: int = 2
    scheduler: str | None = None  # dask scheduler address: run the grid and decoding on that cluster
    workers: int | None = None  # or: start a local dask cluster of this many worker processes
    entry: str | None = None  # leaderboard entry name; default names ladder, mode and budget
    leaderboard: Path | None = None  # default: <out>/leaderboard.csv

    def __post_init__(self) -> None:
        check_options(self.objective, self.solver)

    @property
    def entry_name(self) -> str:
        refined = f" refine{self.refine}" if self.refine > 0 else ""
        return self.entry or f"clicpack {self.ladder}{refined} {self.target.describe()}"


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


def encode(
    images: Path, ladder: str, cache: Path, out: Path, n_jobs: Jobs, refine: int = 0
) -> tuple[GridResult, Path]:
    """Fill the encode grid and write its RD table to ``out/rd.csv``.

    ``n_jobs``: local worker processes, or a dask ``Client`` (see :mod:`pipeline.distributed`).
    ``refine``: latent-refinement steps for the learned candidates (0: off).
    """
    check_layout(images, out)
    paths, candidates = list_images(images), with_refinement(ladder_candidates(ladder), refine)
    if not isinstance(n_jobs, int):
        prepare_workers(n_jobs, paths, candidates, [cache, out])
    grid = run_grid(paths, candidates, cache, n_jobs)
    table_path = out / "rd.csv"
    atomic.write_csv(table_path, grid.table)
    return grid, table_path


def run_submission(s: Settings, log: Callable[[str], None] = print) -> Outcome:
    """Run every stage; each raises its own one-line error on failure.

    With ``s.scheduler`` or ``s.workers`` the encode grid and the decoding of the
    package run on a dask cluster; everything else runs here.
    """
    with connect(s.scheduler, s.workers, log) as client:
        return _run_stages(s, log, client)


def _run_stages(s: Settings, log: Callable[[str], None], client) -> Outcome:
    stage_s: dict[str, float] = {}
    with timed(stage_s, "encode"):
        grid, table_path = encode(s.images, s.ladder, s.cache, s.out, s.n_jobs if client is None else client, s.refine)
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
        verification = verify(submission, s.images, s.out / "decoded", decoder_for(client))
    scores = verification.scores
    log(f"verify: PSNR {scores.psnr:.4f} dB, MS-SSIM {scores.msssim:.6f}, {scores.bpp:.4f} bpp, "
        f"decoded in {verification.decoding_ms:.0f} ms; {verification.agreement.describe()}")
    with timed(stage_s, "report"):
        files = report(s.out, grid.table, verification, s.entry_name,
                       s.leaderboard or s.out / "leaderboard.csv")
    log(f"report: {files.leaderboard}, {files.per_image}, {files.plot}")
    return Outcome(grid, table_path, allocation, verification, files, stage_s)
