"""The slope heuristic for one budget: climb the hulls' segments by efficiency, then fill what is left."""

from dataclasses import dataclass

import numpy as np

from allocate.arrays import PAD_BYTES
from allocate.frontier import Frontier, Hull, convex_hull, pareto_frontier


@dataclass(frozen=True, eq=False)
class SlopeGreedy:
    """A feasible choice (frontier column per image) and the LP multiplier λ it met (0 if the budget is slack)."""

    column: np.ndarray
    multiplier: float


def lagrangian_bound(front: Frontier, multiplier: float, cap: int) -> float:
    """L(λ) = Σ_i min_j (cost_ij + λ·bytes_ij) − λ·cap: a lower bound on the cost of every choice within cap."""
    return float((front.cost + multiplier * front.bytes).min(axis=1).sum() - multiplier * cap)


def _fill(hull: Hull, start: int, taken: np.ndarray, room: int) -> None:
    """Take, in efficiency order from start, every next segment of an unblocked image that still fits."""
    if start >= len(hull.seg_bytes):
        return
    tail_bytes = hull.seg_bytes[start:]
    smallest_left = np.minimum.accumulate(tail_bytes[::-1])[::-1].tolist()
    blocked = set()
    for pos, (image, size) in enumerate(zip(hull.seg_image[start:].tolist(), tail_bytes.tolist())):
        if room < smallest_left[pos]:
            break
        if image in blocked:
            continue
        if size <= room:
            room -= size
            taken[image] += 1
        else:
            blocked.add(image)


def slope_greedy(front: Frontier, hull: Hull, cap: int) -> SlopeGreedy:
    """Start every image at its smallest candidate and take hull segments, best bytes-for-cost first.

    The first segment that does not fit fixes λ (its efficiency; the LP relaxation's multiplier);
    later segments of images not yet blocked are still taken while they fit. Requires
    sum of the smallest candidates <= cap.
    """
    start_bytes = int(front.bytes[:, 0].sum())
    total = start_bytes + np.cumsum(hull.seg_bytes)
    split = int(np.searchsorted(total, cap, side="right"))
    taken = np.bincount(hull.seg_image[:split], minlength=len(front.size))
    multiplier = float(hull.seg_efficiency[split]) if split < len(total) else 0.0
    _fill(hull, split, taken, cap - (int(total[split - 1]) if split else start_bytes))
    return SlopeGreedy(column=hull.vertex[np.arange(len(taken)), taken], multiplier=multiplier)


@dataclass(frozen=True, eq=False)
class TargetGreedy:
    """Slots meeting every target (None if the climb never met them) and a lower bound on their total bytes."""

    slot: np.ndarray | None
    bound: float


def target_greedy(bytes_: np.ndarray, res: np.ndarray, cap: np.ndarray, weights: np.ndarray) -> TargetGreedy:
    """The slope heuristic for quality targets Σ res[k] <= cap[k]: climb the hulls of (bytes, Σ_k weights_k·res_k)
    from the smallest candidates, best quality-per-byte first, and stop as soon as every target is met.

    bound is the LP bound of the surrogate problem (bytes needed for Σ weights·res <= Σ weights·cap),
    which relaxes the targets and so bounds every allocation that meets them.
    """
    rows = np.arange(len(bytes_))
    merit = np.where(bytes_ < PAD_BYTES, np.tensordot(weights, res, axes=1), np.inf)
    front = pareto_frontier(bytes_, merit, tiebreak=res[0])
    hull = convex_hull(front)
    img = hull.seg_image
    start_res = res[:, rows, front.slot[:, 0]].sum(axis=1)
    step_res = res[:, img, front.slot[img, hull.seg_to]] - res[:, img, front.slot[img, hull.seg_from]]
    totals = np.concatenate((start_res[:, None], start_res[:, None] + np.cumsum(step_res, axis=1)), axis=1)
    met = (totals <= cap[:, None]).all(axis=0)

    surrogate = float(weights @ cap)
    merit_total = front.cost[:, 0].sum() - np.concatenate(([0.0], np.cumsum(hull.seg_cost)))
    bytes_total = front.bytes[:, 0].sum() + np.concatenate(([0], np.cumsum(hull.seg_bytes)))
    within = np.flatnonzero(merit_total <= surrogate)
    if not len(within):
        bound = np.inf
    elif within[0] == 0:
        bound = float(bytes_total[0])
    else:
        t = within[0] - 1  # the segment that crosses the surrogate cap
        bound = float(bytes_total[t] + (merit_total[t] - surrogate) / hull.seg_efficiency[t])
    if not met.any():
        return TargetGreedy(slot=None, bound=bound)
    taken = np.bincount(img[:int(np.argmax(met))], minlength=len(rows))
    return TargetGreedy(slot=front.slot[rows, hull.vertex[rows, taken]], bound=bound)
