"""What an allocation returns: the chosen candidates, their aggregate scores and the optimality certificate."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocate.metrics import aggregate_psnr, bits_per_pixel, per_image_psnr, weighted_msssim

OBJECTIVE_NAMES = {
    "sse": "total SSE",
    "msssim": "MS-SSIM shortfall Σ pixels·(1 − msssim)",
    "bytes": "total bytes",
}


class InfeasibleError(ValueError):
    """No allocation meets the constraints; the message says what is reachable."""


class NoSolutionError(RuntimeError):
    """A heuristic or time-limited solver returned no allocation, although one may exist."""


@dataclass(frozen=True, eq=False)
class Allocation:
    """One candidate per image, with a certificate: lower_bound <= the optimum <= objective, gap = the difference.

    objective is the minimised quantity named by objective_name ('sse', 'msssim' for the MS-SSIM
    shortfall Σ pixels·(1 − msssim), or 'bytes' in transparent mode). gap is 0 when optimality is proven.
    """

    chosen: pd.DataFrame  # the chosen table row per image, all columns kept, sorted by image
    total_bytes: int
    objective: float
    lower_bound: float
    gap: float
    solver: str
    wall_s: float
    mode: str  # 'budget' or 'transparent'
    objective_name: str
    certificate: str  # how lower_bound was obtained
    cap_bytes: int | None = None
    min_psnr: float | None = None
    min_msssim: float | None = None
    details: dict = field(default_factory=dict)  # solver statistics (JSON-safe)

    @property
    def total_pixels(self) -> int:
        return int(self.chosen["pixels"].sum())

    @property
    def psnr(self) -> float:
        """Aggregate PSNR: one MSE over all RGB values of the set."""
        return aggregate_psnr(float(self.chosen["sse"].sum()), self.total_pixels)

    @property
    def msssim(self) -> float:
        """Pixel-weighted MS-SSIM."""
        return weighted_msssim(self.chosen["msssim"].to_numpy(), self.chosen["pixels"].to_numpy())

    @property
    def bpp(self) -> float:
        return bits_per_pixel(self.total_bytes, self.total_pixels)

    @property
    def psnr_per_image_mean(self) -> float:
        """Unweighted mean of the per-image PSNRs (reported beside the aggregate, never instead)."""
        return float(np.mean(per_image_psnr(self.chosen["sse"], self.chosen["pixels"])))

    def summary(self) -> dict:
        """The scalar facts of the allocation (no per-image rows)."""
        return {
            "mode": self.mode, "solver": self.solver, "objective_name": self.objective_name,
            "objective": self.objective, "lower_bound": self.lower_bound, "gap": self.gap,
            "certificate": self.certificate, "total_bytes": self.total_bytes, "cap_bytes": self.cap_bytes,
            "min_psnr": self.min_psnr, "min_msssim": self.min_msssim, "images": len(self.chosen),
            "total_pixels": self.total_pixels, "bpp": self.bpp, "psnr": self.psnr, "msssim": self.msssim,
            "psnr_per_image_mean": self.psnr_per_image_mean, "wall_s": self.wall_s, "details": self.details,
        }

    def to_dict(self) -> dict:
        """A JSON-ready manifest: the summary and, per image, the chosen candidate and its numbers."""
        cols = ["image", "candidate", "family", "bytes", "pixels", "sse", "msssim"]
        choices = [
            {"image": str(i), "candidate": str(c), "family": str(f), "bytes": int(b), "pixels": int(p),
             "sse": float(s), "msssim": float(m)}
            for i, c, f, b, p, s, m in self.chosen[cols].itertuples(index=False)
        ]
        return {**self.summary(), "choices": choices}
