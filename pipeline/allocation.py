"""What the allocator is asked: a byte budget or transparency targets."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    """Fewest bytes that reach an aggregate PSNR and a pixel-weighted MS-SSIM."""

    psnr: float = 40.0
    msssim: float = 0.993

    def describe(self) -> str:
        return f"transparent PSNR>={self.psnr:g} MS-SSIM>={self.msssim:g}"

    @property
    def tag(self) -> str:
        return f"psnr{self.psnr:g}-msssim{self.msssim:g}"

    def less(self, table: pd.DataFrame, overhead: int) -> Transparent:
        return self  # no cap: the container's bytes are counted, not constrained


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
