"""What the allocator is asked: a byte budget or transparency targets."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

import allocate

from .errors import PipelineError

DEFAULT_BPP = 0.15


@dataclass(frozen=True)
class Budget:
    """Best quality within a byte cap: ``bytes`` if given, else ``bpp`` of the whole set."""

    bpp: float = DEFAULT_BPP
    bytes: int | None = None

    def cap(self, table: pd.DataFrame) -> int:
        return self.bytes if self.bytes is not None else allocate.cap_from_bpp(self.bpp, total_pixels(table))

    def describe(self) -> str:
        return f"budget {self.bytes} bytes" if self.bytes is not None else f"budget {self.bpp:g} bpp"

    @property
    def tag(self) -> str:
        """A folder name for this target's submission among several."""
        return f"{self.bytes}B" if self.bytes is not None else f"{self.bpp:g}bpp"

    def less(self, table: pd.DataFrame, overhead: int) -> Budget:
        """This cap less ``overhead`` bytes (a container's structure that counts against it)."""
        return Budget(bytes=self.cap(table) - overhead)


@dataclass(frozen=True)
class Transparent:
    """Fewest bytes that reach an aggregate PSNR and a pixel-weighted MS-SSIM (``None``: PSNR alone)."""

    psnr: float = 40.0
    msssim: float | None = 0.993

    def describe(self) -> str:
        return f"transparent PSNR>={self.psnr:g}" + (f" MS-SSIM>={self.msssim:g}" if self.msssim is not None else "")

    @property
    def tag(self) -> str:
        return f"psnr{self.psnr:g}" + (f"-msssim{self.msssim:g}" if self.msssim is not None else "")

    def less(self, table: pd.DataFrame, overhead: int) -> Transparent:
        return self  # no cap: the container's bytes are counted, not constrained

    def psnr_alone(self) -> Transparent:
        """This target without its MS-SSIM constraint, which needs no cell's MS-SSIM."""
        return Transparent(self.psnr, None)


Target = Budget | Transparent


def total_pixels(table: pd.DataFrame) -> int:
    """Pixels of the image set (each image counted once)."""
    return int(table.drop_duplicates("image")["pixels"].sum())


def check_options(objective: str, solver: str) -> None:
    """PipelineError unless the allocator knows this objective and solver."""
    for option, value, allowed in (("objective", objective, allocate.OBJECTIVES), ("solver", solver, allocate.SOLVERS)):
        if value not in allowed:
            raise PipelineError(f"unknown {option} {value!r}; choose one of {', '.join(allowed)}")


def solve(table: pd.DataFrame, target: Target, objective: str, solver: str) -> allocate.Allocation:
    """Run the exact allocator for ``target``; returns its ``Allocation``."""
    if isinstance(target, Budget):
        return allocate.solve_budget(table, target.cap(table), objective, solver)
    return allocate.solve_transparent(table, target.psnr, target.msssim, solver)


def request(ladder: str, target: Target, objective: str, solver: str) -> dict:
    """What was asked, as recorded in the manifest."""
    mode = "budget" if isinstance(target, Budget) else "transparent"
    return {"ladder": ladder, "mode": mode, **asdict(target), "objective": objective, "solver": solver}


PRICED = ("bytes", "sse", "msssim_loss")  # the cell quantities a Lagrangian weighs, in this order


def priced_quantities(rows: pd.DataFrame) -> np.ndarray:
    """(rows, 3) each RD-table row's ``PRICED`` quantities; an MS-SSIM not measured (NaN) has
    no shortfall, so it weighs nothing."""
    values = rows[["bytes", "sse", "msssim"]].to_numpy(dtype=float)
    values[:, 2] = rows["pixels"].to_numpy() * (1 - np.nan_to_num(values[:, 2], nan=1.0))
    return values


class Prices(NamedTuple):
    """A Lagrangian over ``PRICED`` (the objective weighs 1, each constraint its LP multiplier)
    and its allowance: a cell whose cost exceeds its image's cheapest by more than the
    allowance is in no optimal allocation (reduced-cost fixing; the allowance is the gap
    between an allocation's objective and the Lagrangian bound)."""

    weights: np.ndarray  # (3,) in the order of PRICED
    allowance: float


def prices(table: pd.DataFrame, target: Target, objective: str) -> Prices | None:
    """How the exact allocation of ``target`` on ``table`` prices a cell: its own Lagrangian
    (the LP relaxation's multipliers it searched with) and, as the allowance, the gap between
    its objective and that Lagrangian's bound.  None when no allocation of these cells meets
    the target."""
    try:
        allocation = solve(table, target, objective, "exact")
    except allocate.InfeasibleError:
        return None
    details = allocation.details
    if isinstance(target, Budget):
        weight = {objective_column(objective): 1.0, "bytes": details["multiplier"]}
    else:
        weight = {"bytes": 1.0} | dict(zip(("sse", "msssim_loss"), details["multipliers"]))
    allowance = max(allocation.objective - details["lagrangian_bound"], 0.0)
    return Prices(np.array([weight.get(q, 0.0) for q in PRICED]), allowance)


def objective_column(objective: str) -> str:
    """The cell quantity a budget allocation minimises."""
    return "sse" if objective == "sse" else "msssim_loss"
