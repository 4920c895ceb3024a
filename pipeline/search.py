"""Adaptive grid: encode a few settings per image, then only where an allocation can land.

The full grid costs images × candidates, yet an allocation only ever picks, per image, cells
near one operating slope.  So per image and family (the settings of one codec or one learned
ladder, listed lowest rate first) the search encodes the lowest setting, then repeats:

1. price every cell by the Lagrangian of each target's allocation on the cells encoded so
   far (``pipeline.allocation.prices``: the LP relaxation's multipliers), with its allowance:
   a cell costing more than its image's cheapest plus the allowance is in no optimal
   allocation (reduced-cost fixing);
2. bound from below what an unencoded setting can cost: between two encoded settings
   (:func:`gap_bound`) and above the highest (:func:`beyond_bound`), assuming each family's
   curve of distortion against bytes is convex and falling;
3. per image and family, in the gap whose bound is furthest within reach, encode the setting
   predicted cheapest (:func:`likeliest`); first where the bound beats the cheapest cell
   itself, then where it is only within the allowance.  While no allocation of the cells
   meets a target, every family grows ``STRIDE`` settings upwards instead;
4. of the cells in gaps, encode only the families cheapest to encode (:func:`cheapest_first`): an
   expensive family (AVIF 4:4:4 at speed 4, about a thousand times JPEG's time) waits until the
   cheap ones have settled the prices, which then often rule it out from its first cell.

It stops when no bound is within reach: under the convexity assumption, no setting left out
can be in an optimal allocation of any target, so the exact allocation of the cells encoded
is the full grid's.  A gap's bound is loose (a chord extended is far below a real curve), so
with a ``tolerance`` (``clic submission --search-tolerance``; :data:`TOLERANCE` is the one
measured) a gap between two encoded settings must also pass a prediction: the search's own
model of the family's curve, interpolated between them (:func:`predicted`), must put a
setting in it within that fraction of the image's least cost of reach.  That gives up the
proof, not the allocation's certificate on the cells encoded; ``bench/replay_search.py``
measures what it saves and what it costs against the full grid
(``bench/results/search_replay.md``).  Extrapolated above the highest encoded setting, the
prediction lost up to 1 % of SSE on small crops, so the bound alone rules there.  By default
the bounds alone decide everywhere.  Cells already in the cache are used too, as they cost
nothing.
``bench/bench_submission.py --full-grid-too`` measures the time saved, the floor any such search
must encode, and the rows against the full grid.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .allocation import Prices, priced_quantities
from .codecs import get_codec, setting_group
from .cache import CellStore
from .grid import Cell, GridResult, fill_cells, open_store, rd_table
from .parallel import Jobs

STRIDE = 4  # while no allocation meets a target, every family grows this many settings upwards
COST_FACTOR = 4.0  # a family waits while another wanted family encodes this many times faster
FREE_S = 0.05  # seconds per cell below which a family never waits
TOLERANCE = 0.01  # the one measured: a gap is encoded if a setting in it is predicted within this fraction of reach

# From an RD table, how each target's allocation prices a cell (None: no allocation of these
# cells meets that target, so every family grows upwards).
Pricing = Callable[[pd.DataFrame], list[Prices | None]]
# How the search gets cells: encoded, or found finished in the store (``grid.fill_cells``; a
# replay of the search over a full grid's cells copies them instead: ``bench/replay_search.py``).
Fill = Callable[[CellStore, list[Cell], Jobs, bool], tuple[list[dict], int]]


def families(candidates: list[str]) -> list[list[str]]:
    """The candidates grouped by what they are settings of (a codec family, a learned ladder),
    each group in the order given (lowest rate first)."""
    groups: dict[str, list[str]] = {}
    for name in candidates:
        groups.setdefault(setting_group(name), []).append(name)
    return list(groups.values())


def seed(family: list[str]) -> list[str]:
    """Where the search starts in a family: its lowest setting, whose bytes bound every higher
    setting's from below (:func:`beyond_bound`)."""
    return family[:1]


def gap_bound(points: list[np.ndarray], k: int, weights: np.ndarray) -> np.ndarray:
    """(S,) the least Lagrangian cost, at each of ``weights`` (S, 3), of any setting strictly
    between the family's encoded points ``k`` and ``k + 1`` (``points``: (3,) values in setting
    order), if the family's curve of weighted distortion against bytes is convex and falling.

    Convexity puts such a point on or above the chord through points k-1 and k extended to the
    right, and the chord through k+1 and k+2 extended to the left; falling puts it no lower
    than point k+1.  The cost, linear along each of these lines, is least at one of their
    crossings or at the gap's ends, so those are the only places tried.
    """
    rate = np.array([p[0] for p in points])
    distortion = np.stack([p[1:] for p in points]) @ weights[:, 1:].T  # (points, S)
    lo, hi = k, k + 1
    r_lo, r_hi = rate[lo], rate[hi]
    lines = [(np.zeros(len(weights)), distortion[hi])]  # (slope, value at r_hi): the floor D >= D_hi
    if lo > 0:
        slope = (distortion[lo] - distortion[lo - 1]) / max(rate[lo] - rate[lo - 1], 1e-9)
        lines.append((slope, distortion[lo] + slope * (r_hi - r_lo)))
    if hi + 1 < len(points):
        slope = (distortion[hi + 1] - distortion[hi]) / max(rate[hi + 1] - rate[hi], 1e-9)
        lines.append((slope, distortion[hi]))
    at = [np.full(len(weights), r_lo), np.full(len(weights), r_hi)]
    for a in range(len(lines)):
        for b in range(a + 1, len(lines)):
            (sa, va), (sb, vb) = lines[a], lines[b]
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = r_hi + (vb - va) / (sa - sb)
            at.append(np.clip(np.nan_to_num(cross, nan=r_lo, posinf=r_hi, neginf=r_lo), r_lo, r_hi))
    floor = [np.max([v + s * (r - r_hi) for s, v in lines], axis=0) for r in at]  # the lower envelope
    return np.min([weights[:, 0] * r + d for r, d in zip(at, floor)], axis=0)


def beyond_bound(points: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """(S,) the least Lagrangian cost, at each of ``weights``, of any setting above the family's
    highest encoded one, if its curve is convex and falling: on or above the last chord extended
    (weighted distortion never below 0), so least where that chord meets zero distortion cost.
    From one point, only its bytes: a higher setting costs at least those, at no distortion."""
    if len(points) == 1:
        return weights[:, 0] * points[0][0]
    (r_a, *d_a), (r_b, *d_b) = points[-2], points[-1]
    dist_a, dist_b = np.array(d_a) @ weights[:, 1:].T, np.array(d_b) @ weights[:, 1:].T
    slope = np.minimum((dist_b - dist_a) / max(r_b - r_a, 1e-9), 0.0)
    falls = slope < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(falls, r_b + dist_b / -slope, 0.0)  # where the extended chord hits 0
    return np.minimum(weights[:, 0] * r_b + dist_b, np.where(falls, weights[:, 0] * reach, np.inf))


def _line(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Piecewise-linear through (xs, ys), extended beyond both ends along the end segments
    (flat where an end segment has no width: two settings of equal bytes)."""

    def slope(a: int, b: int) -> float:
        return float((ys[b] - ys[a]) / (xs[b] - xs[a])) if xs[b] != xs[a] else 0.0

    inside = np.interp(x, xs, ys)
    left, right = ys[0] + (x - xs[0]) * slope(0, 1), ys[-1] + (x - xs[-1]) * slope(-2, -1)
    return np.where(x < xs[0], left, np.where(x > xs[-1], right, inside))


def predicted(settings: list[int], points: list[np.ndarray], choices: range, weights: np.ndarray,
              reach: np.ndarray) -> np.ndarray:
    """(choices,) each unencoded setting's predicted cost less ``reach``, at the Lagrangian where
    that is least (negative: within reach): log-bytes linear in the setting (grids step
    geometrically in rate), log-distortion linear in log-bytes, both through the encoded points
    (at least two)."""
    at = np.array(choices, dtype=float)
    log_rate = np.log(np.maximum([p[0] for p in points], 1.0))
    rate = np.exp(_line(at, np.array(settings, dtype=float), log_rate))
    distortion = np.maximum(np.stack([p[1:] for p in points]) @ weights[:, 1:].T, 1e-12)  # (points, T)
    order = np.argsort(log_rate)
    costs = [weights[t, 0] * rate + np.exp(_line(np.log(rate), log_rate[order], np.log(distortion[order, t])))
             - reach[t] for t in range(len(weights))]
    return np.min(costs, axis=0)


def likeliest(settings: list[int], points: list[np.ndarray], choices: range, weights: np.ndarray,
              reach: np.ndarray) -> int:
    """Of the unencoded settings ``choices``, the one :func:`predicted` cheapest relative to
    ``reach`` (from one point, the middle one).  Encoding the cheapest first lowers the image's
    least cost soonest, which closes the other gaps."""
    if len(points) < 2:
        return choices[len(choices) // 2]
    return choices[int(np.argmin(predicted(settings, points, choices, weights, reach)))]


def _by_family(table: pd.DataFrame, family_lists: list[list[str]]):
    """Per image: its (bytes, SSE, MS-SSIM shortfall) rows and, per family, the settings
    encoded (ascending) and their rows."""
    position = {name: (f, i) for f, family in enumerate(family_lists) for i, name in enumerate(family)}
    for image, rows in table.groupby("image", sort=True):
        values = priced_quantities(rows)
        encoded: dict[int, dict[int, np.ndarray]] = {}
        for name, value in zip(rows["candidate"], values):
            f, i = position[name]
            encoded.setdefault(f, {})[i] = value
        families_here = {f: (sorted(points), [points[i] for i in sorted(points)]) for f, points in encoded.items()}
        yield image, values, families_here


def open_gaps(table: pd.DataFrame, family_lists: list[list[str]], priced: list[Prices],
              tolerance: float | None = None) -> list[tuple[str, str]]:
    """(image, candidate) of the setting worth encoding next in each family of each image: of the
    gaps between its encoded settings (:func:`gap_bound`) and the settings above its highest
    (:func:`beyond_bound`), the one whose bound falls furthest below the allowance of the image's
    cheapest cell at one of the ``priced`` Lagrangians; there, the setting :func:`likeliest` to
    be cheapest.  With a ``tolerance``, a gap between two encoded settings only if it holds a
    setting :func:`predicted` within ``tolerance`` × the image's least cost of reach (the range
    above the highest is left to its bound: extrapolated, the prediction misled).  Empty when
    the search is done."""
    weights = np.stack([p.weights for p in priced])  # (T, 3)
    allowance = np.array([p.allowance for p in priced])
    wanted = []
    for image, values, encoded in _by_family(table, family_lists):
        least = (values @ weights.T).min(axis=0)
        reach = least + allowance  # (T,) the costs an optimal allocation can pay
        for f, (settings, points) in encoded.items():
            family = family_lists[f]
            gaps = [(gap_bound(points, k, weights), range(lo + 1, hi))
                    for k, (lo, hi) in enumerate(zip(settings, settings[1:])) if hi - lo >= 2]
            if settings[-1] < len(family) - 1:
                gaps.append((beyond_bound(points, weights), range(settings[-1] + 1, len(family))))
            if tolerance is not None:  # a gap between two points is kept if the curve through them may dip into reach
                gaps = [(bound, choices) for bound, choices in gaps if choices[-1] > settings[-1]
                        or np.min(predicted(settings, points, choices, weights, reach + tolerance * least)) < 0]
            margins = [float(np.min(bound - reach)) for bound, _ in gaps]
            if margins and min(margins) < 0:
                choices = gaps[int(np.argmin(margins))][1]
                wanted.append((image, family[likeliest(settings, points, choices, weights, reach)]))
    return wanted


def cheapest_first(wanted: list[tuple[str, str]], table: pd.DataFrame, factor: float = COST_FACTOR) -> list[tuple[str, str]]:
    """The cells of ``wanted`` whose family encodes (mean seconds per cell in ``table``) within
    ``factor`` of the cheapest wanted family, or in under ``FREE_S`` seconds."""
    if not wanted:
        return wanted
    seconds = table.groupby(table["candidate"].map(setting_group))["enc_s"].mean()
    cost = {name: seconds[setting_group(name)] for _, name in wanted}
    limit = max(factor * min(cost.values()), FREE_S)
    return [(image, name) for image, name in wanted if cost[name] <= limit]


def higher(table: pd.DataFrame, family_lists: list[list[str]], stride: int = STRIDE) -> list[tuple[str, str]]:
    """(image, candidate) ``stride`` settings above the highest encoded one of every family,
    for every image: where a target that no allocation of the encoded cells meets is sought."""
    return [
        (image, family_lists[f][min(settings[-1] + stride, len(family_lists[f]) - 1)])
        for image, _, encoded in _by_family(table, family_lists)
        for f, (settings, _) in encoded.items() if settings[-1] < len(family_lists[f]) - 1
    ]


def search_grid(
    images: list[Path], candidates: list[str], cache: Path, n_jobs: Jobs, pricing: Pricing,
    with_msssim: bool, tolerance: float | None = None, stride: int = STRIDE, fill: Fill = fill_cells,
) -> GridResult:
    """The adaptive grid of ``images × candidates``: the cells worth encoding for the targets
    that ``pricing`` prices, encoded (or found in the cache); ``skipped`` counts the rest.
    ``tolerance``: see :data:`TOLERANCE` (None: the bounds alone decide, and the allocation
    of the cells is provably the full grid's)."""
    store = open_store(images, cache)
    family_lists = families(candidates)
    order = {name: k for k, name in enumerate(candidates)}

    def place(cell: Cell) -> tuple[str, int]:  # the table's row order: image, then candidate
        return cell[0].stem, order[cell[1]]

    path_of = {path.stem: path for path in images}
    prints = {name: get_codec(name).fingerprint for name in candidates}
    records: dict[Cell, dict] = {}  # the cells in the table so far, each loaded or encoded once
    for path in images:  # finished cells of the cache cost nothing
        for name in candidates:
            record = store.load(path.stem, name, prints[name])
            if record is not None and (record.get("msssim") is not None or not with_msssim):
                records[path, name] = record
    more = {(path, name) for path in images for family in family_lists for name in seed(family)} - records.keys()
    encoded = 0
    while True:
        new = sorted(more, key=place)
        filled, now = fill(store, new, n_jobs, with_msssim)
        records.update(zip(new, filled))
        encoded += now
        table = rd_table([records[cell] for cell in sorted(records, key=place)], with_msssim)
        priced = pricing(table)
        if any(p is None for p in priced):
            wanted = higher(table, family_lists, stride)
        else:  # the gaps the Lagrangian itself points at first, then those within the allowance
            wanted = open_gaps(table, family_lists, [p._replace(allowance=0.0) for p in priced], tolerance)
            wanted = cheapest_first(wanted or open_gaps(table, family_lists, priced, tolerance), table)
        more = {(path_of[image], name) for image, name in wanted} - records.keys()
        if not more:
            break
    how = "exact search" if tolerance is None else f"search within tolerance {tolerance:g}"
    return GridResult(table, store, encoded, skipped=len(images) * len(candidates) - len(table), search=how)
