"""The LP relaxation of a multi-constraint choice problem, for its Lagrange multipliers (scipy linprog, HiGHS)."""

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array


def lp_multipliers(cost: np.ndarray, res: np.ndarray, cap: np.ndarray) -> np.ndarray | None:
    """Optimal duals μ >= 0 of Σ res[k] <= cap[k] in min Σ cost·x, Σ_j x_ij = 1, 0 <= x <= 1 (inf cost = padding).

    None when even the relaxation is infeasible (then so is the integer problem).
    """
    image, column = np.nonzero(np.isfinite(cost))
    n_images, n_vars = len(cost), len(image)
    scale = np.where(cap > 0, cap, 1.0)  # rows rescaled to a right-hand side of 1 for well-conditioned duals
    out = linprog(
        cost[image, column],
        A_ub=res[:, image, column] / scale[:, None],
        b_ub=cap / scale,
        A_eq=csr_array((np.ones(n_vars), (image, np.arange(n_vars))), shape=(n_images, n_vars)),
        b_eq=np.ones(n_images),
        bounds=(0, 1),
        method="highs",
    )
    if out.status == 2:
        return None
    if out.status != 0:
        raise RuntimeError(f"LP relaxation failed: {out.message}")
    return np.maximum(-out.ineqlin.marginals, 0) / scale
