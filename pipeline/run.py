"""The whole submission run: encode → allocate → package → verify → report, timed per stage.

One run may serve several targets (CLIC since 2021: 0.075, 0.15 and 0.3 bpp on one
test set): the grid is encoded once, then each target is allocated, packaged, verified
and reported on its own, every package with the same decoder (the union of what the
targets chose), so that one decoder serves them all.  ``layout = "clic2021"`` also
writes ``decoder.zip`` and one ``data.zip`` per target (:mod:`pipeline.layout`) and
verifies them as the organisers' server would.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import allocate
from eval import atomic
from eval.images import list_images
from eval.metrics import bpp

from .allocation import Budget, Target, Transparent, check_options, prices, request, solve
from .cache import CellStore
from .codecs import ladder_candidates, with_refinement
from .codecs.learned import refinement_tag
from .distributed import connect, decoder_for, prepare_workers
from .errors import PipelineError
from .grid import GridResult, fill_cells, run_grid
from .layout import DATA_ZIP, DECODER_ZIP, LAYOUTS, data_zip_overhead, run_as_server, write_data_zip, write_decoder_zip
from .package import package
from .parallel import Jobs
from .paths import check_layout
from .report import ReportFiles, report
from .search import Pricing, search_grid
from .verify import PSNR_TOLERANCE_DB, Verification, scored, verify


@dataclass(frozen=True)
class Settings:
    """Everything a submission run needs (the CLI's options, resolved)."""

    images: Path
    out: Path
    cache: Path
    ladder: str
    target: Target | None = None  # one target: shorthand for targets=(target,)
    targets: tuple[Target, ...] = ()  # several: each gets OUT/<target tag>/
    layout: str = "clic2019"  # or "clic2021": decoder.zip + a data.zip per target (``pipeline.layout``)
    refine: str = "0"  # latent refinement of learned candidates (models.refine): "25", "sga:500"; "0": off
    full_grid: bool = False  # encode every image × candidate instead of the adaptive search (pipeline.search)
    search_tolerance: float | None = None  # pipeline.search's model may also skip cells (None: the bounds alone decide)
    objective: str = "sse"
    solver: str = "exact"
    n_jobs: int = 2
    scheduler: str | None = None  # dask scheduler address: run the grid and decoding on that cluster
    workers: int | None = None  # or: start a local dask cluster of this many worker processes
    entry: str | None = None  # leaderboard entry name; default names ladder, mode and budget
    leaderboard: Path | None = None  # default: <out>/leaderboard.csv

    def __post_init__(self) -> None:
        check_options(self.objective, self.solver)
        targets = self.targets or ((self.target,) if self.target is not None else ())
        if not targets:
            raise PipelineError("no allocation target given")
        if len({t.tag for t in targets}) != len(targets):
            raise PipelineError(f"a target is given twice: {', '.join(t.describe() for t in targets)}")
        if self.layout not in LAYOUTS:
            raise PipelineError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)}")
        refinement_tag(self.refine)  # a bad --refine fails here, before any encoding
        object.__setattr__(self, "targets", tuple(targets))

    def entry_name(self, target: Target) -> str:
        """The leaderboard entry of one target: the given name (with the target if there are
        several), or one naming ladder, refinement, target and a layout other than clic2019
        (its bytes count differently, so it must not replace that entry's row)."""
        if self.entry:
            return self.entry if len(self.targets) == 1 else f"{self.entry} {target.describe()}"
        tag = refinement_tag(self.refine)
        refined = f" {tag}" if tag else ""
        layout = f" {self.layout}" if self.layout != LAYOUTS[0] else ""
        return f"clicpack {self.ladder}{refined} {target.describe()}{layout}"

    def folder(self, target: Target) -> Path:
        """Where one target's submission, decoded images and report go."""
        return self.out if len(self.targets) == 1 else self.out / target.tag


@dataclass
class Entry:
    """What one target produced."""

    target: Target
    folder: Path
    allocation: object
    verification: Verification
    files: ReportFiles


@dataclass
class Outcome:
    """What a run produced, with the wall time of each stage in seconds (summed over targets)."""

    grid: GridResult
    table_path: Path
    entries: list[Entry]
    stage_s: dict[str, float] = field(default_factory=dict)

    @property
    def allocation(self) -> object:
        return self._only().allocation

    @property
    def verification(self) -> Verification:
        return self._only().verification

    @property
    def files(self) -> ReportFiles:
        return self._only().files

    def _only(self) -> Entry:
        if len(self.entries) != 1:
            raise ValueError(f"{len(self.entries)} targets: read outcome.entries")
        return self.entries[0]


@contextmanager
def timed(stage_s: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    stage_s[stage] = stage_s.get(stage, 0.0) + time.perf_counter() - start


def encode(
    images: Path, ladder: str, cache: Path, out: Path, n_jobs: Jobs, refine: str = "0",
    pricing: Pricing | None = None, with_msssim: bool = True, tolerance: float | None = None,
) -> tuple[GridResult, Path]:
    """Fill the encode grid and write its RD table to ``out/rd.csv``.

    ``n_jobs``: local worker processes, or a dask ``Client`` (see :mod:`pipeline.distributed`).
    ``refine``: latent refinement of the learned candidates (``25``, ``sga:500``; ``0``: off).  ``pricing``: the
    targets' Lagrangians for the adaptive search (:mod:`pipeline.search`, within ``tolerance``); None: the full grid.
    ``with_msssim``: measure every cell's MS-SSIM (else it stays empty, for the allocation to skip).
    """
    check_layout(images, out)
    paths, candidates = list_images(images), with_refinement(ladder_candidates(ladder), refine)
    if not isinstance(n_jobs, int):
        prepare_workers(n_jobs, paths, candidates, [cache, out])
    if pricing is None:
        grid = run_grid(paths, candidates, cache, n_jobs, with_msssim)
    else:
        grid = search_grid(paths, candidates, cache, n_jobs, pricing, with_msssim, tolerance)
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
    jobs = s.n_jobs if client is None else client
    stems = sorted(path.stem for path in list_images(s.images))
    overhead = data_zip_overhead(stems) if s.layout == "clic2021" else 0
    # Every cell's MS-SSIM only where an objective reads it.  A transparent target's MS-SSIM
    # rarely binds, so it is first left out: if the fewest bytes that reach the PSNR alone also
    # reach the MS-SSIM, they are the answer; only otherwise is every cell measured.
    psnr_alone = tuple(t.psnr_alone() if isinstance(t, Transparent) else t for t in s.targets)
    grid, table_path, allocations = _encode_and_allocate(s, jobs, psnr_alone, overhead, stage_s, log)
    if psnr_alone != s.targets:  # its chosen cells' MS-SSIM decides; a budget's is scored by verification
        with timed(stage_s, "allocate"):
            allocations = measure_chosen(allocations, grid.store, s.images, jobs)
    unmet = [(t, a) for t, a in zip(s.targets, allocations)
             if isinstance(t, Transparent) and t.msssim is not None and not a.msssim >= t.msssim]
    if unmet:
        target, allocation = unmet[0]
        log(f"allocate: MS-SSIM {allocation.msssim:.6f} below {target.msssim:g} at the fewest bytes for the PSNR "
            "alone: measuring every cell's MS-SSIM")
        grid, table_path, allocations = _encode_and_allocate(s, jobs, s.targets, overhead, stage_s, log, True)
    else:
        allocations = [_msssim_met(a, t) for a, t in zip(allocations, s.targets)]
    decoder_needs = sorted({c for a in allocations for c in a.chosen["candidate"]})  # one decoder for all targets
    entries = []
    for target, allocation in zip(s.targets, allocations):
        folder = s.folder(target)
        submission = folder / "submission"
        with timed(stage_s, "package"):
            manifest = package(submission, allocation, grid.store, table_path,
                               request(s.ladder, target, s.objective, s.solver) | {"layout": s.layout},
                               decoder_candidates=decoder_needs, skipped_cells=grid.skipped, search=grid.search)
        log(f"package: {submission} (images {manifest['images_bytes']} B, decoder {manifest['decoder_bytes']} B)")
        with timed(stage_s, "verify"):
            verification = verify(submission, s.images, folder / "decoded", decoder_for(client), jobs)
            if s.layout == "clic2021":
                verification = _verify_as_server(s, target, grid.table, folder, verification, jobs)
        scores = verification.scores
        log(f"verify: PSNR {scores.psnr:.4f} dB, MS-SSIM {scores.msssim:.6f}, {scores.bpp:.4f} bpp, "
            f"decoded in {verification.decoding_ms:.0f} ms; {verification.agreement.describe()}")
        with timed(stage_s, "report"):
            files = report(folder, grid.table, verification, s.entry_name(target),
                           s.leaderboard or s.out / "leaderboard.csv")
        log(f"report: {files.leaderboard}, {files.per_image}, {files.plot}")
        entries.append(Entry(target, folder, allocation, verification, files))
    log("time: " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stage_s.items()))
    return Outcome(grid, table_path, entries, stage_s)


def _encode_and_allocate(
    s: Settings, jobs: Jobs, targets: tuple[Target, ...], overhead: int, stage_s: dict[str, float],
    log: Callable[[str], None], with_msssim: bool = False,
) -> tuple[GridResult, Path, list[allocate.Allocation]]:
    """The grid (the full one, or the adaptive search for ``targets``) and each target's allocation;
    every cell's MS-SSIM is measured if ``with_msssim`` or the objective reads it."""

    with timed(stage_s, "encode"):
        grid, table_path = encode(s.images, s.ladder, s.cache, s.out, jobs, s.refine,
                                  None if s.full_grid else pricing(targets, overhead, s.objective),
                                  with_msssim or s.objective == "msssim", s.search_tolerance)
    skipped = f", {grid.skipped} of the full grid's skipped by the {grid.search}" if grid.skipped else ""
    log(f"encode: {len(grid.table)} cells ({grid.encoded} encoded now{skipped}) -> {table_path}")
    table = allocate.load_rd_table(table_path)
    allocations = []
    with timed(stage_s, "allocate"):
        for target in targets:
            allocation = solve(table, target.less(table, overhead), s.objective, s.solver)
            allocations.append(allocation)
            log(f"allocate: {target.describe()}{f' (less {overhead} B of zip structure)' if overhead else ''}: "
                f"{allocation.total_bytes} bytes, {allocation.bpp:.4f} bpp, gap {allocation.gap:g} "
                f"({allocation.solver}, {allocation.wall_s:.2f} s)")
    return grid, table_path, allocations


def pricing(targets: tuple[Target, ...], overhead: int, objective: str) -> Pricing:
    """How the adaptive search prices cells for ``targets`` (caps less ``overhead`` bytes of a
    container's structure)."""
    return lambda table: [prices(table, target.less(table, overhead), objective) for target in targets]


def _msssim_met(allocation: allocate.Allocation, target: Target) -> allocate.Allocation:
    """A PSNR-alone allocation recorded against the whole ``target``, whose MS-SSIM it meets:
    no allocation meeting both can have fewer bytes."""
    if not isinstance(target, Transparent) or target.msssim is None:
        return allocation
    met = f"; MS-SSIM {allocation.msssim:.6f} >= {target.msssim:g} without its constraint"
    return replace(allocation, min_msssim=target.msssim, certificate=allocation.certificate + met)


def measure_chosen(
    allocations: list[allocate.Allocation], store: CellStore, images: Path, n_jobs: Jobs
) -> list[allocate.Allocation]:
    """The allocations with the MS-SSIM of each chosen cell measured (for the manifest and
    report) where the grid left it empty."""
    path_of = {path.stem: path for path in list_images(images)}
    keys = [list(zip(a.chosen["image"], a.chosen["candidate"])) for a in allocations]
    cells = sorted({(path_of[image], name) for k in keys for image, name in k})
    records, _ = fill_cells(store, cells, n_jobs, with_msssim=True)
    msssim = {(r["image"], r["candidate"]): r["msssim"] for r in records}
    return [replace(a, chosen=a.chosen.assign(msssim=[msssim[key] for key in k])) for a, k in zip(allocations, keys)]


def _verify_as_server(s: Settings, target: Target, table, folder: Path, verification: Verification,
                      jobs: Jobs) -> Verification:
    """The CLIC 2021 layout of a verified package: ``decoder.zip`` (written by the first target,
    the same bytes for every one) and this target's ``data.zip``, unzipped and decoded in a
    fresh folder as the organisers would.  Each decoded image must be the package's (within
    the rounding tolerance of ``pipeline.verify``), the data zip within the cap; the scores
    are the server decode's, with the data zip's size as the bytes that count."""
    decoder_zip = s.out / DECODER_ZIP
    if target == s.targets[0]:
        write_decoder_zip(folder / "submission" / "decoder", decoder_zip)
    data_zip = folder / DATA_ZIP
    size = write_data_zip(folder / "submission" / "images", data_zip)
    cap = target.cap(table) if isinstance(target, Budget) else None
    if cap is not None and size > cap:
        raise PipelineError(f"{data_zip}: {size} bytes, over the {target.describe()} cap of {cap} bytes")
    try:
        decoded, decoding_ms = run_as_server(decoder_zip, data_zip, folder / ".server")
        server = scored(s.images, decoded, jobs)
    finally:
        shutil.rmtree(folder / ".server", ignore_errors=True)
    package_psnr = verification.scores.per_image.set_index("image")["psnr"]
    for image, psnr in server.per_image.set_index("image")["psnr"].items():
        if not abs(psnr - package_psnr[image]) <= PSNR_TOLERANCE_DB:
            raise PipelineError(f"{image}: ./decode from the zips gives {psnr:.4f} dB, the package {package_psnr[image]:.4f}")
    scores = replace(server, total_bytes=size, bpp=bpp(size, server.total_pixels))
    return replace(verification, scores=scores, decoding_ms=decoding_ms, decoder_bytes=decoder_zip.stat().st_size)
