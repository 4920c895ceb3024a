"""Per-image Pareto frontiers and lower convex hulls in (bytes, cost), vectorised over all images."""

from dataclasses import dataclass

import numpy as np

from allocate.arrays import PAD_BYTES


@dataclass(frozen=True, eq=False)
class Frontier:
    """Per-image Pareto points: bytes strictly ascending, cost strictly descending, left-aligned and padded."""

    slot: np.ndarray  # (N, F) candidate slot in the RDArrays, -1 for padding
    bytes: np.ndarray  # (N, F) int64, PAD_BYTES for padding
    cost: np.ndarray  # (N, F) float64, inf for padding
    size: np.ndarray  # (N,) number of points per image


@dataclass(frozen=True, eq=False)
class Hull:
    """Vertices of each frontier's lower convex hull and its segments sorted by efficiency, best first."""

    vertex: np.ndarray  # (N, H) frontier column of the k-th hull vertex, -1 for padding
    seg_image: np.ndarray  # (S,) image of each segment
    seg_from: np.ndarray  # (S,) frontier column the segment starts at
    seg_to: np.ndarray  # (S,) frontier column it ends at
    seg_bytes: np.ndarray  # (S,) int64 bytes added by the segment (> 0)
    seg_cost: np.ndarray  # (S,) cost removed by the segment (> 0)
    seg_efficiency: np.ndarray  # (S,) cost removed per byte, non-increasing


def _left_align(keep: np.ndarray, *arrays_and_fills: tuple[np.ndarray, float | int]) -> list[np.ndarray]:
    """Move the kept entries of each row to its front, padding the rest with each array's fill."""
    pos = np.cumsum(keep, axis=1) - 1
    rows, cols = np.nonzero(keep)
    width = max(int(keep.sum(axis=1).max()), 1)
    out = []
    for values, fill in arrays_and_fills:
        packed = np.full((keep.shape[0], width), fill, dtype=values.dtype)
        packed[rows, pos[rows, cols]] = values[rows, cols]
        out.append(packed)
    return out


def pareto_frontier(bytes_: np.ndarray, cost: np.ndarray, tiebreak: np.ndarray) -> Frontier:
    """Drop dominated candidates (more bytes and no lower cost); among exact ties keep the lowest tiebreak, then slot."""
    order = np.argsort(tiebreak, axis=1, kind="stable")
    for key in (cost, bytes_):
        order = np.take_along_axis(order, np.argsort(np.take_along_axis(key, order, 1), axis=1, kind="stable"), 1)
    sorted_cost = np.take_along_axis(cost, order, 1)
    keep = np.ones(cost.shape, dtype=bool)
    keep[:, 1:] = sorted_cost[:, 1:] < np.minimum.accumulate(sorted_cost, axis=1)[:, :-1]
    keep &= np.isfinite(sorted_cost)
    slot, fb, fc = _left_align(keep, (order, -1), (np.take_along_axis(bytes_, order, 1), PAD_BYTES), (sorted_cost, np.inf))
    return Frontier(slot=slot, bytes=fb, cost=fc, size=keep.sum(axis=1))


def _neighbours(alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each column, the nearest alive column to its left (-1 if none) and to its right (width if none)."""
    width = alive.shape[1]
    idx = np.arange(width)
    left = np.maximum.accumulate(np.where(alive, idx, -1), axis=1)
    right = np.minimum.accumulate(np.where(alive, idx, width)[:, ::-1], axis=1)[:, ::-1]
    prev = np.concatenate((np.full((len(alive), 1), -1), left[:, :-1]), axis=1)
    nxt = np.concatenate((right[:, 1:], np.full((len(alive), 1), width)), axis=1)
    return prev, nxt


def hull_vertices(front: Frontier) -> np.ndarray:
    """(N, F) mask of the frontier points on the lower convex hull (collinear middle points excluded).

    Points lying on or above the chord of their alive neighbours are never hull vertices, so all of them
    are removed at once, repeatedly, until none is left.
    """
    alive = front.slot >= 0
    rows = np.flatnonzero(front.size >= 3)
    while len(rows):
        sub = alive[rows]
        prev, nxt = _neighbours(sub)
        inner = sub & (prev >= 0) & (nxt < sub.shape[1])
        b = front.bytes[rows].astype(float)
        c = front.cost[rows]
        p, n = np.where(inner, prev, 0), np.where(inner, nxt, 0)
        bp, bn, cp, cn = (np.take_along_axis(a, i, 1) for a, i in ((b, p), (b, n), (c, p), (c, n)))
        with np.errstate(invalid="ignore"):
            drop = inner & ((c - cp) * (bn - bp) >= (cn - cp) * (b - bp))
        changed = drop.any(axis=1)
        alive[rows] = sub & ~drop
        rows = rows[changed]
    return alive


def convex_hull(front: Frontier) -> Hull:
    """The hull vertices of every frontier and all hull segments sorted by efficiency (ties: image, then order)."""
    mask = hull_vertices(front)
    (vertex,) = _left_align(mask, (np.broadcast_to(np.arange(mask.shape[1]), mask.shape), -1))
    start_img, start_k = np.nonzero(vertex[:, 1:] >= 0)  # segment k runs from vertex k to vertex k + 1
    a, b = vertex[start_img, start_k], vertex[start_img, start_k + 1]
    seg_bytes = front.bytes[start_img, b] - front.bytes[start_img, a]
    seg_cost = front.cost[start_img, a] - front.cost[start_img, b]
    efficiency = seg_cost / seg_bytes
    order = np.lexsort((start_k, start_img, -efficiency))
    return Hull(vertex=vertex, seg_image=start_img[order], seg_from=a[order], seg_to=b[order], seg_bytes=seg_bytes[order],
                seg_cost=seg_cost[order], seg_efficiency=efficiency[order])
