"""Non-dominated filtering of partial solutions in (cost, resource 1[, resource 2])."""

import numpy as np

CHUNK = 256


def _first_minima(values: np.ndarray) -> np.ndarray:
    """keep[i]: values[i] is below every earlier value."""
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] < np.minimum.accumulate(values)[:-1]
    return keep


def _undominated_in_order(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """keep[i]: no earlier point j < i has x_j <= x_i and y_j <= y_i.

    Chunks are checked against the staircase (2-D Pareto front) of all earlier points and pairwise
    within themselves, then merged into the staircase.
    """
    keep = np.ones(len(x), dtype=bool)
    stair_x, stair_y = np.empty(0), np.empty(0)  # stair_x ascending, stair_y strictly descending
    for lo in range(0, len(x), CHUNK):
        cx, cy = x[lo:lo + CHUNK], y[lo:lo + CHUNK]
        below = np.searchsorted(stair_x, cx, side="right") - 1
        dominated = (below >= 0) & (stair_y[np.maximum(below, 0)] <= cy) if len(stair_x) else np.zeros(len(cx), bool)
        earlier = np.tri(len(cx), k=-1, dtype=bool)
        dominated |= ((cx[None, :] <= cx[:, None]) & (cy[None, :] <= cy[:, None]) & earlier).any(axis=1)
        keep[lo:lo + CHUNK] = ~dominated
        px, py = np.concatenate((stair_x, cx[~dominated])), np.concatenate((stair_y, cy[~dominated]))
        order = np.lexsort((py, px))
        on_stair = _first_minima(py[order])
        stair_x, stair_y = px[order][on_stair], py[order][on_stair]
    return keep


def undominated(cost: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Indices of the points that no other point matches or beats in cost and every resource (res: (M, n), M ≤ 2).

    Points are scanned in an order that extends the dominance order, and a point is dropped iff an
    earlier one has no larger resources. With one resource the order is by cost alone (a stable sort,
    fast on the concatenated sorted runs the search builds): a point tied in cost with a better one
    scanned after it may then survive, which costs time, never exactness.
    """
    if res.shape[0] == 1:
        order = np.argsort(cost, kind="stable")
        return order[_first_minima(res[0][order])]
    if res.shape[0] == 2:
        order = np.lexsort((res[1], res[0], cost))
        return order[_undominated_in_order(res[0][order], res[1][order])]
    raise ValueError(f"dominance filtering supports 1 or 2 resources, got {res.shape[0]}")
