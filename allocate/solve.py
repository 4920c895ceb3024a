"""The two allocation modes: best quality within a byte cap, and fewest bytes meeting quality targets."""

import math
from time import perf_counter
from typing import Literal, get_args

import numpy as np
import pandas as pd

from allocate.arrays import RDArrays, rd_arrays
from allocate.core import CoreProblem, CoreResult, solve_core
from allocate.frontier import convex_hull, pareto_frontier
from allocate.greedy import lagrangian_bound, slope_greedy, target_greedy
from allocate.metrics import aggregate_psnr, bits_per_pixel, sse_cap
from allocate.reference import solve_milp
from allocate.relaxation import lp_multipliers
from allocate.result import Allocation, InfeasibleError, NoSolutionError
from allocate.table import require_msssim

Solver = Literal["exact", "milp", "greedy"]
Objective = Literal["sse", "msssim"]
SOLVERS: tuple[str, ...] = get_args(Solver)
OBJECTIVES: tuple[str, ...] = get_args(Objective)


def _require(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _package(table: pd.DataFrame, rd: RDArrays, slot: np.ndarray, cost: np.ndarray, bound: float,
             start: float, **fields) -> Allocation:
    """The Allocation for the chosen slots; the objective is cost summed over them."""
    objective = float(rd.take(cost, slot).sum())
    return Allocation(
        chosen=table.iloc[rd.take(rd.row, slot)].reset_index(drop=True),
        total_bytes=int(rd.take(rd.bytes, slot).sum()),
        objective=objective,
        lower_bound=min(bound, objective),
        gap=max(objective - bound, 0.0),
        wall_s=perf_counter() - start,
        **fields,
    )


def _core_certificate(bound_name: str, out: CoreResult) -> tuple[str, dict]:
    """How the exact search proved its answer, and its statistics."""
    how = f"{bound_name}, then a bounded search of the {out.core_images} images it left open"
    if out.milp_rounds:
        how += f" ({out.milp_rounds} search round(s) handed to HiGHS)"
    return how, {"lagrangian_bound": out.lagrangian_bound, "core_images": out.core_images,
                 "max_states": out.max_states, "rounds": out.rounds, "milp_rounds": out.milp_rounds}


def _reference(cost: np.ndarray, res: np.ndarray, cap: np.ndarray, time_limit: float | None,
               infeasible: InfeasibleError) -> tuple[np.ndarray, float, str, dict]:
    """Slots, dual bound, certificate and status from scipy's milp; `infeasible` is raised if HiGHS proves it."""
    out = solve_milp(cost, res, cap, time_limit)
    if out.column is None:
        if "infeasible" in out.message.lower():
            raise infeasible
        raise NoSolutionError(f"milp returned no allocation: {out.message}")
    return out.column, out.bound, "HiGHS dual bound", {"milp_status": out.message}


def _budget_search(rd: RDArrays, objective: str, cap_bytes: int, solver: str) -> tuple[np.ndarray, float, str, dict]:
    """Slots, lower bound, certificate and statistics from the greedy or the exact solver."""
    cost = rd.cost(objective)
    rows = np.arange(len(cost))
    tiebreak = np.nan_to_num(rd.cost("msssim" if objective == "sse" else "sse"), nan=0.0)  # NaN: MS-SSIM not measured
    front = pareto_frontier(rd.bytes, cost, tiebreak=tiebreak)
    greedy = slope_greedy(front, convex_hull(front), cap_bytes)
    bound = lagrangian_bound(front, greedy.multiplier, cap_bytes)
    details = {"lagrangian_bound": bound, "multiplier": greedy.multiplier}
    if solver == "greedy":
        return front.slot[rows, greedy.column], bound, "Lagrangian (LP relaxation) bound", details
    problem = CoreProblem(cost=front.cost, res=front.bytes[None].astype(float), cap=np.array([float(cap_bytes)]))
    out = solve_core(problem, np.array([greedy.multiplier]), greedy.column)
    slot = front.slot[rows, out.column]
    certificate, stats = _core_certificate("Lagrangian bound", out)
    return slot, float(rd.take(cost, slot).sum()), certificate, details | stats


def solve_budget(table: pd.DataFrame, cap_bytes: int, objective: Objective = "sse", solver: Solver = "exact",
                 time_limit: float | None = None) -> Allocation:
    """One candidate per image with total bytes <= cap_bytes, minimising total SSE (objective='sse', i.e. the
    best aggregate PSNR) or the MS-SSIM shortfall (objective='msssim', the best pixel-weighted MS-SSIM).

    solver: 'exact' (proven optimum), 'milp' (scipy/HiGHS reference; time_limit in seconds) or 'greedy'.
    Raises InfeasibleError when even the smallest candidates exceed the cap.
    """
    start = perf_counter()
    _require("objective", objective, OBJECTIVES)
    _require("solver", solver, SOLVERS)
    if objective == "msssim":
        require_msssim(table, "the MS-SSIM objective")
    rd = rd_arrays(table)
    cost = rd.cost(objective)
    smallest = int(rd.bytes.min(axis=1).sum())
    pixels = rd.total_pixels
    too_small = InfeasibleError(
        f"no allocation fits {cap_bytes:,} bytes ({bits_per_pixel(cap_bytes, pixels):.4f} bpp): the smallest "
        f"reachable total is {smallest:,} bytes ({bits_per_pixel(smallest, pixels):.4f} bpp), every image at its smallest candidate"
    )
    if smallest > cap_bytes:
        raise too_small
    if solver == "milp":
        slot, bound, certificate, details = _reference(cost, rd.bytes[None].astype(float), np.array([float(cap_bytes)]),
                                                       time_limit, too_small)
    else:
        slot, bound, certificate, details = _budget_search(rd, objective, int(cap_bytes), solver)
    return _package(table, rd, slot, cost, bound, start, solver=solver, mode="budget", objective_name=objective,
                    certificate=certificate, cap_bytes=int(cap_bytes), details=details)


def _targets_out_of_reach(rd: RDArrays, cap: np.ndarray, min_psnr: float, min_msssim: float | None) -> str:
    """Why the targets cannot be met one at a time ('' if each can be)."""
    pixels = rd.total_pixels
    least_sse = float(rd.sse.min(axis=1).sum())
    reasons = []
    if least_sse > cap[0]:
        reasons.append(f"PSNR >= {min_psnr} dB is out of reach: the best reachable aggregate PSNR is "
                       f"{aggregate_psnr(least_sse, pixels):.4f} dB")
    if min_msssim is not None and (least_loss := float(rd.msssim_loss.min(axis=1).sum())) > cap[1]:
        reasons.append(f"MS-SSIM >= {min_msssim} is out of reach: the best reachable pixel-weighted MS-SSIM is "
                       f"{1 - least_loss / pixels:.6f}")
    return "; ".join(reasons)


def _not_together(min_psnr: float, min_msssim: float | None) -> InfeasibleError:
    return InfeasibleError(
        f"PSNR >= {min_psnr} dB and MS-SSIM >= {min_msssim} are each reachable on their own, but no allocation reaches both"
    )


def solve_transparent(table: pd.DataFrame, min_psnr: float = 40.0, min_msssim: float | None = 0.993,
                      solver: Solver = "exact", time_limit: float | None = None) -> Allocation:
    """Fewest total bytes with aggregate PSNR >= min_psnr and pixel-weighted MS-SSIM >= min_msssim
    (``None``: PSNR alone, and the table's MS-SSIM may be unmeasured).

    solver: 'exact' (LP multipliers, reduced-cost fixing and a bounded search), 'milp' or 'greedy'.
    Raises InfeasibleError saying what is reachable when the targets cannot be met.
    """
    start = perf_counter()
    _require("solver", solver, SOLVERS)
    if min_msssim is not None:
        require_msssim(table, "transparent mode")
    rd = rd_arrays(table)
    psnr_only = min_msssim is None
    cap = np.array([sse_cap(min_psnr, rd.total_pixels)] + ([] if psnr_only else [(1 - min_msssim) * rd.total_pixels]))
    if reason := _targets_out_of_reach(rd, cap, min_psnr, min_msssim):
        raise InfeasibleError(reason)
    valid = rd.valid
    res = np.stack([np.where(valid, used, 0.0) for used in ([rd.sse] if psnr_only else [rd.sse, rd.msssim_loss])])
    cost = np.where(valid, rd.bytes.astype(float), np.inf)
    details: dict = {}
    if solver == "milp":
        slot, bound, certificate, details = _reference(cost, res, cap, time_limit, _not_together(min_psnr, min_msssim))
    elif solver == "greedy":
        climb = target_greedy(rd.bytes, res, cap, weights=1 / np.where(cap > 0, cap, 1.0))
        if climb.slot is None:
            raise NoSolutionError("the greedy climb never met both targets; they may still be reachable together: use the exact solver")
        slot, bound, certificate = climb.slot, float(math.ceil(climb.bound)), "LP bound of the summed (surrogate) targets"
    else:
        multipliers = lp_multipliers(cost, res, cap)
        if multipliers is None:
            raise _not_together(min_psnr, min_msssim)
        climb = target_greedy(rd.bytes, res, cap, weights=multipliers)
        out = solve_core(CoreProblem(cost=cost, res=res, cap=cap, integral=True), multipliers, climb.slot)
        if out.column is None:
            raise _not_together(min_psnr, min_msssim)
        slot, bound = out.column, float(rd.take(cost, out.column).sum())
        certificate, details = _core_certificate("LP-dual Lagrangian bound", out)
        details["multipliers"] = multipliers.tolist()
    return _package(table, rd, slot, cost, bound, start, solver=solver, mode="transparent", objective_name="bytes",
                    certificate=certificate, min_psnr=min_psnr, min_msssim=min_msssim, details=details)
