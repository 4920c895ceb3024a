"""`allocate` commands: solve one allocation, or tune offline from a cached RD table."""

import json
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from eval import atomic  # standard library only: no torch
from eval.errors import one_line_errors

from allocate.metrics import cap_from_bpp
from allocate.plots import plot_bytes_per_image, plot_chosen, plot_psnr_vs_bpp
from allocate.report import format_allocation
from allocate.result import InfeasibleError, NoSolutionError
from allocate.solve import SOLVERS, Objective, Solver, solve_budget, solve_transparent
from allocate.table import BadTableError, load_rd_table, total_pixels
from allocate.tune import (SubsetMode, best_per_size, budget_grid, ladder_subsets, leaderboard_rows, subset_mode,
                           sweep)

app = typer.Typer(
    help="Exact bit allocation over an RD table: pick one candidate encoding per image, within a byte "
    "budget or at quality targets, with a certificate of optimality.",
    add_completion=False,
    no_args_is_help=True,
)

TablePath = Annotated[Path, typer.Argument(help="RD table CSV (image, candidate, family, bytes, pixels, sse, msssim).")]
ObjectiveOption = Annotated[Objective, typer.Option(
    help="Budget mode: minimise total SSE (best aggregate PSNR) or maximise pixel-weighted MS-SSIM.")]
USER_ERRORS = (BadTableError, InfeasibleError, NoSolutionError, OSError)


def _write_json(path: Path, data: dict) -> None:
    atomic.write_text(path, json.dumps(data, indent=2) + "\n")


@app.command()
def solve(
    table: TablePath,
    bpp: Annotated[float, typer.Option(min=0, help="Budget: cap = floor(bpp × total pixels / 8) bytes.")] = 0.15,
    n_bytes: Annotated[Optional[int], typer.Option("--bytes", min=0, help="Budget: explicit cap in bytes (overrides --bpp).")] = None,
    objective: ObjectiveOption = "sse",
    transparent: Annotated[bool, typer.Option("--transparent", help="Fewest bytes reaching --psnr and --msssim instead of a budget.")] = False,
    psnr: Annotated[float, typer.Option(help="Transparent mode: minimum aggregate PSNR (dB).")] = 40.0,
    msssim: Annotated[float, typer.Option(max=1, help="Transparent mode: minimum pixel-weighted MS-SSIM.")] = 0.993,
    solver: Annotated[Solver, typer.Option(
        help="exact (proven optimum), milp (scipy HiGHS reference) or greedy (slope heuristic).")] = "exact",
    time_limit: Annotated[Optional[float], typer.Option(min=0, help="milp only: stop after this many seconds.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the allocation (summary, certificate, choices) as JSON here.")] = None,
    show: Annotated[int, typer.Option(min=0, help="How many per-image choices to print.")] = 20,
) -> None:
    """Choose one candidate per image: best quality within a budget, or fewest bytes at quality targets."""
    with one_line_errors(*USER_ERRORS):
        rd = load_rd_table(table)
        if transparent:
            allocation = solve_transparent(rd, psnr, msssim, solver, time_limit)
        else:
            cap = n_bytes if n_bytes is not None else cap_from_bpp(bpp, total_pixels(rd))
            allocation = solve_budget(rd, cap, objective, solver, time_limit)
        typer.echo(format_allocation(allocation, show))
        if out is not None:
            _write_json(out, allocation.to_dict())
            typer.echo(f"wrote {out}")


def _write_leaderboard(path: Path, sweep_table: pd.DataFrame) -> None:
    from eval.leaderboard import append_rows  # eval imports torch: load it only here

    path.unlink(missing_ok=True)
    append_rows(path, leaderboard_rows(sweep_table))


@app.command()
def tune(
    table: TablePath,
    bpp_min: Annotated[float, typer.Option(min=0, help="Smallest budget of the sweep (bpp).")] = 0.05,
    bpp_max: Annotated[float, typer.Option(min=0, help="Largest budget of the sweep (bpp).")] = 0.6,
    steps: Annotated[int, typer.Option(min=1, help="Number of budgets, evenly spaced.")] = 12,
    target_bpp: Annotated[float, typer.Option(min=0, help="Budget for the per-image plots and the ladder-subset analysis.")] = 0.15,
    objective: ObjectiveOption = "sse",
    solvers: Annotated[str, typer.Option(help=f"Comma-separated solvers to sweep ({', '.join(SOLVERS)}).")] = "exact,greedy",
    subsets: Annotated[SubsetMode, typer.Option(help="Which subsets of the ladder's models to evaluate at --target-bpp: every subset, "
                                         "the full ladder less one model, auto (every subset up to --max-all models), or none.")] = "auto",
    max_all: Annotated[int, typer.Option(min=1, help="auto: evaluate every subset up to this many models.")] = 8,
    out_dir: Annotated[Path, typer.Option(help="Folder for the CSV files and PNG plots.")] = Path("tune"),
) -> None:
    """Sweep budgets per solver and against the same-model baseline; show which ladder models matter."""
    chosen_solvers = [s.strip() for s in solvers.split(",") if s.strip()]
    if bad := [s for s in chosen_solvers if s not in SOLVERS]:
        raise typer.BadParameter(f"unknown solver(s) {', '.join(bad)}; choose from {', '.join(SOLVERS)}", param_hint="--solvers")
    with one_line_errors(*USER_ERRORS):
        rd = load_rd_table(table)
        cap = cap_from_bpp(target_bpp, total_pixels(rd))
        at_target = solve_budget(rd, cap, objective)
        _tune_outputs(rd, cap, at_target, chosen_solvers, objective, bpp_min, bpp_max, steps, target_bpp,
                      subsets, max_all, out_dir)


def _tune_outputs(rd: pd.DataFrame, cap: int, at_target, chosen_solvers: list[str], objective: str,
                  bpp_min: float, bpp_max: float, steps: int, target_bpp: float, subsets: str, max_all: int,
                  out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    swept = sweep(rd, budget_grid(bpp_min, bpp_max, steps), chosen_solvers, objective)
    atomic.write_csv(out_dir / "sweep.csv", swept)
    _write_leaderboard(out_dir / "leaderboard.csv", swept)
    typer.echo(swept[["strategy", "target_bpp", "status", "bpp", "psnr", "msssim", "gap", "note"]]
               .to_string(index=False, float_format=lambda v: f"{v:.6g}"))

    title = f"exact allocation at {target_bpp:g} bpp"
    plot_psnr_vs_bpp(swept, out_dir / "psnr_vs_bpp.png", objective)
    plot_chosen(at_target.chosen, rd, out_dir / "chosen_candidates.png", title)
    plot_bytes_per_image(at_target.chosen, out_dir / "bytes_per_image.png", title)
    _write_json(out_dir / "choice.json", at_target.to_dict())

    written = ["sweep.csv", "leaderboard.csv", "psnr_vs_bpp.png", "chosen_candidates.png", "bytes_per_image.png", "choice.json"]
    mode = subset_mode(rd["candidate"].nunique(), subsets, max_all)
    if mode != "none":
        analysis = ladder_subsets(rd, cap, mode, objective)
        atomic.write_csv(out_dir / "subsets.csv", analysis)
        written.append("subsets.csv")
        heading = "best subset of each size" if mode == "all" else "the full ladder less one model"
        typer.echo(f"\nladder models at {target_bpp:g} bpp, {heading} "
                   f"(full ladder: PSNR {at_target.psnr:.4f} dB, MS-SSIM {at_target.msssim:.6f}):")
        shown = best_per_size(analysis, objective) if mode == "all" else analysis
        columns = ["models" if mode == "all" else "dropped", "status", "psnr", "msssim", "delta_psnr", "delta_msssim"]
        typer.echo(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    typer.echo(f"\nwrote {', '.join(written)} in {out_dir}")
