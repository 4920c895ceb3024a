"""``clic``: the command line of the whole toolkit.

Expected failures (bad input, infeasible targets, a decoded image that does not
match the RD table) print one line on stderr and exit with status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import functools
from importlib import metadata
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Optional

import typer

import allocate
from allocate.cli import app as allocate_app
from allocate.solve import Objective, Solver
from eval.cli import eval_command, format_scores
from eval.errors import EvalInputError, one_line_errors, show_tracebacks
from models.cli import (
    export_command, import_command, ladders_command, shift_down_command, train_command, widen_command,
)
from models.data import TrainingError
from models.extend import ShiftError
from models.ladder import UnknownLadderError
from models.runtime.bitstream import BadStreamError
from models.runtime.safetensors import BadWeightsFileError
from models.widen import WidenError

from .allocation import DEFAULT_BPP, Budget, Target, Transparent
from .codecs import LADDERS, default_ladder
from .errors import PipelineError
from .distributed import connect, decoder_for
from .run import Settings, encode, run_submission
from .verify import verify

EXPECTED_ERRORS = (
    PipelineError, EvalInputError, allocate.BadTableError, allocate.InfeasibleError,
    allocate.NoSolutionError, OSError, BadStreamError, BadWeightsFileError, UnknownLadderError,
    TrainingError, ShiftError, WidenError,
)
BUNDLED_IMAGES = Path("data") / "kodak"  # in the repository (editable install) or the working folder


WORKFLOW, TOOLS = "Workflow", "Training and ladder tools"  # the two groups of `clic --help`

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Learned-image-compression challenge submissions: encode grid, exact bit allocation, "
    "packaging, verification, CLIC scoring.",
)


def print_version(value: bool) -> None:
    if value:
        typer.echo(f"clicpack {metadata.version('clicpack')}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", envvar="CLIC_DEBUG", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    show_tracebacks(debug)  # every command's error handler, set per invocation


def expected_errors() -> AbstractContextManager[None]:
    """Turn an expected failure into one line on stderr and exit status 2."""
    return one_line_errors(*EXPECTED_ERRORS)


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """A command whose expected errors become one line and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> None:
        with expected_errors():
            command(*args, **kwargs)

    return wrapper


def resolve_images(images: Path | None) -> Path:
    """The ``--images`` folder, or the bundled Kodak set beside this package or in the working folder."""
    if images is not None:
        return images
    places = [Path(__file__).resolve().parents[1] / BUNDLED_IMAGES, Path.cwd() / BUNDLED_IMAGES]
    found = next((p for p in places if p.is_dir()), None)
    if found is None:
        raise PipelineError(f"no --images given and no bundled Kodak set at {' or '.join(map(str, places))}")
    return found


def numbers(text: str | None, kind: type, option: str) -> list:
    """A comma-separated list of non-negative numbers (``0.075,0.15,0.3``); PipelineError otherwise."""
    if text is None:
        return []
    try:
        values = [kind(part) for part in text.split(",")]
    except ValueError:
        raise PipelineError(f"{option} takes a number or a comma-separated list of numbers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise PipelineError(f"{option} must not be negative, got {text!r}")
    return values


def resolve_targets(
    bpp: str | None, n_bytes: str | None, transparent: bool, psnr: float, msssim: float
) -> tuple[Target, ...]:
    """The allocation targets from the mode options (one bpp budget by default; lists give several)."""
    if transparent:
        if bpp is not None or n_bytes is not None:
            raise PipelineError("--transparent takes --psnr/--msssim targets, not --bpp/--bytes")
        return (Transparent(psnr, msssim),)
    if bpp is not None and n_bytes is not None:
        raise PipelineError("give --bpp or --bytes, not both")
    if n_bytes is not None:
        return tuple(Budget(bytes=b) for b in numbers(n_bytes, int, "--bytes"))
    return tuple(Budget(bpp=b) for b in numbers(bpp, float, "--bpp")) or (Budget(bpp=DEFAULT_BPP),)


ImagesOpt = Annotated[
    Optional[Path], typer.Option("--images", help="Folder of original images (default: the bundled data/kodak).")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (rd.csv, submission/, decoded/, report).")]
CacheOpt = Annotated[Path, typer.Option("--cache", help="Encode cache: one bitstream + record per image × candidate.")]
LadderOpt = Annotated[
    Optional[str],
    typer.Option("--ladder", help=f"Candidates: {' | '.join(LADDERS)} (default: learned once trained, else classical; "
                 "for submission --transparent: transparent,classical once trained), "
                 "a learned ladder file's name (psnr, msssim, transparent: models/ladders/NAME.toml), a candidate "
                 "name, or a comma-separated list of these (transparent,classical or jpeg-q35,avif-q30)."),
]
JobsOpt = Annotated[int, typer.Option("--n-jobs", min=1, help="Parallel encode workers (local processes; without --workers/--scheduler).")]
SchedulerOpt = Annotated[
    Optional[str],
    typer.Option("--scheduler", help="Encode and decode on the dask cluster of this scheduler, e.g. "
                 "tcp://HOST:8786; the folders given must be on storage shared by its workers."),
]
RefineOpt = Annotated[
    str,
    typer.Option("--refine", help="Latent refinement per learned encode: STEPS of Adam (e.g. 25) or sga:STEPS "
                 "(stochastic Gumbel annealing, e.g. sga:500); encoder only: same decoder, slower encoding, never "
                 "a worse rate-distortion cost per image. 0: off."),
]
WorkersOpt = Annotated[
    Optional[int], typer.Option("--workers", min=1, help="Encode and decode on a local dask cluster of N worker processes."),
]


@app.command("encode", rich_help_panel=WORKFLOW)
def encode_command(
    images: ImagesOpt = None,
    out: OutOpt = Path("out"),
    cache: CacheOpt = Path("cache"),
    ladder: LadderOpt = None,
    refine: RefineOpt = "0",
    n_jobs: JobsOpt = 2,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Encode every image with every candidate of a ladder and write the RD table (OUT/rd.csv)."""
    with expected_errors(), connect(scheduler, workers, typer.echo) as client:
        jobs = n_jobs if client is None else client
        grid, table_path = encode(resolve_images(images), ladder or default_ladder(), cache, out, jobs, refine)
        typer.echo(f"{len(grid.table)} cells ({grid.encoded} encoded now) -> {table_path}")


@app.command("submission", rich_help_panel=WORKFLOW)
def submission_command(
    images: ImagesOpt = None,
    out: OutOpt = Path("out"),
    cache: CacheOpt = Path("cache"),
    ladder: LadderOpt = None,
    refine: RefineOpt = "0",
    bpp: Annotated[Optional[str], typer.Option(help=f"Budget: bits per pixel of the whole set (default {DEFAULT_BPP}); "
                                               "a list (0.075,0.15,0.3) makes one submission per target.")] = None,
    n_bytes: Annotated[Optional[str], typer.Option("--bytes", help="Budget: total bytes of all image files (or a list).")] = None,
    transparent: Annotated[bool, typer.Option("--transparent", help="Fewest bytes meeting --psnr and --msssim instead of a budget.")] = False,
    psnr: Annotated[float, typer.Option(help="Transparent mode: minimum aggregate PSNR in dB.")] = 40.0,
    msssim: Annotated[float, typer.Option(help="Transparent mode: minimum pixel-weighted MS-SSIM.")] = 0.993,
    objective: Annotated[Objective, typer.Option(help="Budget mode: minimise total SSE (best aggregate PSNR) "
                                                 "or maximise pixel-weighted MS-SSIM.")] = "sse",
    solver: Annotated[Solver, typer.Option(help="Allocation solver.")] = "exact",
    n_jobs: JobsOpt = 2,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    entry: Annotated[Optional[str], typer.Option(help="Leaderboard entry name (default: names ladder, mode and budget).")] = None,
    leaderboard: Annotated[Optional[Path], typer.Option(help="Leaderboard CSV to add the rows to (default: OUT/leaderboard.csv).")] = None,
    layout: Annotated[str, typer.Option(help="clic2019: the submission/ folder; clic2021: also OUT/decoder.zip and "
                                        "a data.zip per target, verified as the organisers' server would.")] = "clic2019",
    full_grid: Annotated[bool, typer.Option("--full-grid", help="Encode every image with every candidate instead of "
                                            "the adaptive search (which encodes a coarse grid and refines only where "
                                            "the targets' allocations can land).")] = False,
    search_tolerance: Annotated[Optional[float], typer.Option(
        min=0, help="Also skip what the search's model predicts cannot come within this fraction (e.g. 0.01) of "
                    "an image's least cost: fewer cells, no proof that the rows are the full grid's (default: the "
                    "convexity bounds alone decide).")] = None,
) -> None:
    """Build verified submissions: encode once → allocate, package, verify, report each target."""
    with expected_errors():
        settings = Settings(
            images=resolve_images(images), out=out, cache=cache, ladder=ladder or default_ladder(transparent),
            targets=resolve_targets(bpp, n_bytes, transparent, psnr, msssim), refine=refine, objective=objective,
            solver=solver, n_jobs=n_jobs, scheduler=scheduler, workers=workers, entry=entry,
            leaderboard=leaderboard, layout=layout, full_grid=full_grid, search_tolerance=search_tolerance,
        )
        run_submission(settings, log=typer.echo)


@app.command("compare", rich_help_panel=WORKFLOW)
def compare_command(
    tables: Annotated[list[Path], typer.Argument(help="RD tables (rd.csv: a curve per family) or leaderboard CSVs "
                                                 "(a curve each).")],
    anchor: Annotated[Optional[str], typer.Option(help="The curve the others are measured against (default: the first), "
                                                  "e.g. avif.")] = None,
    bpp: Annotated[str, typer.Option(help="Targets of the side-by-side table.")] = "0.075,0.15,0.3",
    out: Annotated[Path, typer.Option(help="Output folder of the plot (compare.png).")] = Path("out"),
) -> None:
    """Compare RD curves: Bjøntegaard delta rate and PSNR against an anchor, one plot, PSNR at each target."""
    from .compare import compare  # matplotlib: only here

    with expected_errors():
        plot = out / "compare.png"
        deltas, targets = compare(tables, anchor, numbers(bpp, float, "--bpp"), plot)
        typer.echo(deltas.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        typer.echo("")
        typer.echo(targets.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        typer.echo(f"plot: {plot}")


@app.command("verify", rich_help_panel=WORKFLOW)
def verify_command(
    submission: Annotated[Path, typer.Argument(help="A packaged submission folder (decoder/, images/, manifest.json).")],
    images: ImagesOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder: the decoded PNGs go to OUT/decoded "
                                                "(default: beside the package).")] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Decode a submission in a fresh process (or shards on a cluster), score it, check it against its RD table."""
    with expected_errors(), connect(scheduler, workers, typer.echo) as client:
        out = submission.absolute().parent if out is None else out
        result = verify(submission, resolve_images(images), out / "decoded", decoder_for(client),
                        client if client is not None else 1)
        typer.echo(format_scores(result.scores))
        typer.echo(f"check: {result.agreement.describe()}")
        typer.echo(f"decoding time: {result.decoding_ms:.0f} ms; decoder: {result.decoder_bytes} bytes")


app.add_typer(allocate_app, name="allocate", help="Exact bit allocation over an RD table.", rich_help_panel=WORKFLOW)
app.command("eval", rich_help_panel=WORKFLOW)(eval_command)
app.command("ladders", rich_help_panel=WORKFLOW)(guarded(ladders_command))
app.command("import", rich_help_panel=WORKFLOW)(guarded(import_command))
app.command("train", rich_help_panel=TOOLS)(guarded(train_command))
app.command("export", rich_help_panel=TOOLS)(guarded(export_command))
app.command("widen", rich_help_panel=TOOLS)(guarded(widen_command))
app.command("shift-down", rich_help_panel=TOOLS)(guarded(shift_down_command))
