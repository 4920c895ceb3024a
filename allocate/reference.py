"""The reference solver: the same multiple-choice knapsack as a binary programme for scipy's milp (HiGHS)."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array, vstack

OBJECTIVE_SCALE = 1e6  # costs are rescaled to total about this, so HiGHS' absolute gap (1e-6) is negligible


@dataclass(frozen=True, eq=False)
class MilpResult:
    """The chosen column per image (None if milp found none), its dual bound and HiGHS' status line."""

    column: np.ndarray | None
    bound: float
    optimal: bool
    message: str


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send what HiGHS prints straight to file descriptor 1 (debug lines during MIP solves) to /dev/null."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solve_milp(cost: np.ndarray, res: np.ndarray, cap: np.ndarray, time_limit: float | None = None) -> MilpResult:
    """min Σ cost[i, x_i] s.t. Σ res[k, i, x_i] <= cap[k], one x_i per image; inf cost marks padding.

    Runs HiGHS with a zero relative MIP gap; with time_limit it may stop early with a positive gap.
    """
    image, column = np.nonzero(np.isfinite(cost))
    n_images, n_vars = len(cost), len(image)
    c = cost[image, column]
    typical_total = float(np.abs(c).mean()) * n_images
    integer = np.all(c == np.round(c))  # integer costs (bytes) stay as they are
    scale = 1.0 if integer or typical_total == 0 else OBJECTIVE_SCALE / typical_total
    one_each = csr_array((np.ones(n_vars), (image, np.arange(n_vars))), shape=(n_images, n_vars))
    rows = csr_array(res[:, image, column])
    constraints = LinearConstraint(vstack([one_each, rows]), np.concatenate((np.ones(n_images), np.full(len(cap), -np.inf))),
                                   np.concatenate((np.ones(n_images), cap)))
    options = {"mip_rel_gap": 0.0}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    with _quiet_stdout():
        out = milp(c * scale, integrality=np.ones(n_vars), bounds=Bounds(0, 1), constraints=constraints, options=options)
    bound = getattr(out, "mip_dual_bound", None)
    bound = -np.inf if bound is None or not np.isfinite(bound) else float(bound) / scale
    if out.x is None:
        return MilpResult(column=None, bound=bound, optimal=False, message=out.message)
    picked = out.x > 0.5
    chosen = np.full(n_images, -1)
    chosen[image[picked]] = column[picked]
    return MilpResult(column=chosen, bound=bound, optimal=out.status == 0, message=out.message)
