"""Exact multiple-choice knapsack: Lagrangian reduced-cost fixing, then a bounded dynamic programme on the core.

Problem: choose one column x_i per image to minimise Σ cost[i, x_i] subject to Σ res[k, i, x_i] <= cap[k].

For any multipliers μ >= 0, with base_i = argmin_j (cost + μ·res)[i, j] and reduced costs r_ij >= 0,
every choice x satisfies   cost(x) = L(μ) + Σ_i r_{i,x_i} + μ·slack(x),   slack(x) = cap − res(x) >= 0.
A search for choices cheaper than a ceiling C therefore only needs alternatives with r < C − L(μ); images
with none stay at base. The rest (the core) is enumerated image by image, cheapest alternative first,
keeping non-dominated partial choices whose lower bounds (at μ and at a few other multipliers) stay
below C, and lowering C to each better choice found. Nothing below C is ever pruned, so if the search
finds a choice below C, the best it finds is optimal; if not, every choice costs at least C.

The ceiling starts well below the incumbent (a small core, found fast in the usual case where the
optimum is close to L(μ)) and grows fourfold until it reaches the incumbent, which is then proven optimal.
"""

from dataclasses import dataclass
from itertools import product

import numpy as np

from allocate.dominance import undominated
from allocate.reference import solve_milp

REL_EPS = 1e-12
PROBE_FACTORS = (0.5, 0.9, 1.0, 1.1, 2.0)  # extra multipliers ν = μ·factor (per resource) for sharper bounds
FIRST_CEILING = 1 / 64  # the first search ceiling, as a fraction of the incumbent's gap above L(μ)
CEILING_GROWTH = 4.0
MAX_STATES = {1: 250_000, 2: 20_000}  # per number of resources: beyond, the core goes to HiGHS instead


@dataclass(frozen=True, eq=False)
class CoreProblem:
    """cost (N, K) with inf at padding; res (M, N, K) finite everywhere; cap (M,); integral: costs are integers."""

    cost: np.ndarray
    res: np.ndarray
    cap: np.ndarray
    integral: bool = False


@dataclass(frozen=True, eq=False)
class CoreResult:
    """The optimal columns (None if no choice fits), the Lagrangian bound L(μ), and how much was searched."""

    column: np.ndarray | None
    lagrangian_bound: float
    core_images: int
    max_states: int
    rounds: int
    milp_rounds: int  # rounds whose core was solved by HiGHS because the DP grew past MAX_STATES


@dataclass(frozen=True, eq=False)
class _Core:
    """Alternatives of the core images, flat and grouped by image (cheapest image first)."""

    image: np.ndarray  # (S,) core images in search order
    start: np.ndarray  # (S + 1,) offsets of each image's alternatives
    column: np.ndarray  # (A,)
    reduced: np.ndarray  # (A,) reduced cost r
    dcost: np.ndarray  # (A,) cost change from base
    dres: np.ndarray  # (M, A) resource change from base
    min_future: np.ndarray  # (M, S) the most the images after s can lower each resource (<= 0)
    max_future: np.ndarray  # (M, S) the most they can raise it (>= 0)
    probe_floor: np.ndarray  # (V, S) Σ over images after s of min(0, min_a dcost_a + ν_v·dres_a)


def _future(per_image: np.ndarray) -> np.ndarray:
    """Σ over images after s of per_image, for every s."""
    tail = np.cumsum(per_image[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate((tail[:, 1:], np.zeros((len(per_image), 1))), axis=1)


class _Reduction:
    """The problem relative to the Lagrangian base choice: reduced costs, changes from base, and the bound."""

    def __init__(self, problem: CoreProblem, multipliers: np.ndarray):
        cost, res = problem.cost, problem.res
        rows = np.arange(len(cost))
        lagr = cost + np.tensordot(multipliers, res, axes=1)
        self.base = np.argmin(lagr, axis=1)
        lag_base = lagr[rows, self.base]
        self.r = lagr - lag_base[:, None]
        self.base_cost, base_res = cost[rows, self.base], res[:, rows, self.base]
        self.dcost, self.dres = cost - self.base_cost[:, None], res - base_res[:, :, None]
        self.slack0 = problem.cap - base_res.sum(axis=1)
        self.offset = float(multipliers @ self.slack0)  # base cost − L(μ)
        self.bound = float(self.base_cost.sum()) - self.offset
        self.multipliers = multipliers
        self.probes = np.array([multipliers * f for f in product(PROBE_FACTORS, repeat=len(multipliers))] + [0 * multipliers])
        self.integral = problem.integral
        self.eps = REL_EPS * (float(np.abs(lag_base).sum()) + abs(self.offset) + 1.0)

    def delta(self, column: np.ndarray) -> float:
        """Cost of a choice minus the base cost."""
        return float(self.dcost[np.arange(len(column)), column].sum())

    def below(self, ceiling: float) -> float:
        """Changes from base must stay below this to beat a choice of change `ceiling`."""
        return ceiling - 1 + 1e3 * self.eps if self.integral else ceiling - self.eps

    def core(self, ceiling: float) -> _Core:
        """The images with alternatives that a choice below ceiling could use, cheapest first."""
        free = self.r < self.below(ceiling) + self.offset
        free[np.arange(len(free)), self.base] = False
        cheapest = np.where(free, self.r, np.inf).min(axis=1)
        image = np.flatnonzero(np.isfinite(cheapest))
        image = image[np.argsort(cheapest[image], kind="stable")]
        pos, column = np.nonzero(free[image])
        rows = image[pos]
        start = np.searchsorted(pos, np.arange(len(image) + 1))
        alt_cost, alt_res = self.dcost[rows, column], self.dres[:, rows, column]
        m = len(self.slack0)
        if len(image):
            lows = np.minimum(np.minimum.reduceat(alt_res, start[:-1], axis=1), 0)
            highs = np.maximum(np.maximum.reduceat(alt_res, start[:-1], axis=1), 0)
            probed = np.minimum(np.minimum.reduceat(alt_cost + self.probes @ alt_res, start[:-1], axis=1), 0)
        else:
            lows = highs = np.zeros((m, 0))
            probed = np.zeros((len(self.probes), 0))
        return _Core(image=image, start=start, column=column, reduced=self.r[rows, column], dcost=alt_cost,
                     dres=alt_res, min_future=_future(lows), max_future=_future(highs), probe_floor=_future(probed))


@dataclass(frozen=True, eq=False)
class _Found:
    """The best choice a search found below its ceiling (column None: none), and its size."""

    column: np.ndarray | None
    delta: float
    core_images: int
    max_states: int
    overflow: bool = False  # the DP stopped at MAX_STATES: nothing is known


def _milp_search(red: _Reduction, core: _Core, ceiling: float) -> _Found:
    """The cheapest choice below ceiling, solving the core (base or a free alternative per core image) with HiGHS."""
    pos = np.repeat(np.arange(len(core.image)), np.diff(core.start))
    slot = np.arange(len(pos)) - core.start[pos] + 1  # slot 0 is the base
    width = int(np.diff(core.start).max()) + 1
    dcost = np.full((len(core.image), width), np.inf)
    dcost[:, 0] = 0.0
    dcost[pos, slot] = core.dcost
    dres = np.zeros((len(red.slack0), len(core.image), width))
    dres[:, pos, slot] = core.dres
    out = solve_milp(dcost, dres, red.slack0)
    if out.column is None:
        return _Found(None, np.inf, len(core.image), 0)
    picked = out.column > 0
    delta = float(dcost[np.flatnonzero(picked), out.column[picked]].sum())
    if not delta < red.below(ceiling):
        return _Found(None, np.inf, len(core.image), 0)
    column = red.base.copy()
    column[core.image[picked]] = core.column[core.start[:-1][picked] + out.column[picked] - 1]
    return _Found(column, delta, len(core.image), 0)


def _search(red: _Reduction, core: _Core, ceiling: float) -> _Found:
    """The cheapest choice with a change from base below ceiling (none if there is none), by the bounded DP."""
    mult, slack0 = red.multipliers, red.slack0
    probe_slack = red.probes @ slack0
    best, found = ceiling, None
    s_cost, s_r, s_res = np.zeros(1), np.zeros(1), np.zeros((len(slack0), 1))
    if (slack0 >= 0).all() and 0 < red.below(best):
        best, found = 0.0, (-1, 0)
    parents: list[np.ndarray] = []
    alts: list[np.ndarray] = []
    max_states = 1
    for step in range(len(core.image)):
        lo, hi = core.start[step], core.start[step + 1]
        ok = core.reduced[lo:hi] < red.below(best) + red.offset
        if not ok.any():
            break  # images are in order of their cheapest alternative: the rest are fixed too
        rr, dc, dr, col = core.reduced[lo:hi][ok], core.dcost[lo:hi][ok], core.dres[:, lo:hi][:, ok], core.column[lo:hi][ok]
        count = len(s_cost)  # candidates: the states as they are, then each alternative added to all of them
        n_cost = np.concatenate((s_cost, (dc[:, None] + s_cost).ravel()))
        n_r = np.concatenate((s_r, (rr[:, None] + s_r).ravel()))
        n_res = np.concatenate((s_res, (dr[:, :, None] + s_res[:, None, :]).reshape(len(slack0), -1)), axis=1)
        slack = slack0[:, None] - n_res
        keep = n_r + mult @ np.maximum(slack - core.max_future[:, step:step + 1], 0) < red.below(best) + red.offset
        keep &= (slack >= core.min_future[:, step:step + 1]).all(axis=0)
        idx = np.flatnonzero(keep)
        # any completion changes the cost by >= dcost + ν·dres − ν·slack0 + (the future's floor at ν), for all ν
        floor = n_cost[idx] + red.probes @ n_res[:, idx] + (core.probe_floor[:, step] - probe_slack)[:, None]
        idx = idx[floor.max(axis=0) < red.below(best)]
        idx = idx[undominated(n_cost[idx], n_res[:, idx])]
        s_cost, s_r, s_res = n_cost[idx], n_r[idx], n_res[:, idx]
        parents.append(idx % count)
        alts.append(np.concatenate(([-1], col))[idx // count])
        max_states = max(max_states, len(idx))
        if max_states > MAX_STATES[len(slack0)]:
            return _Found(None, np.inf, step + 1, max_states, overflow=True)
        fits = (slack[:, idx] >= 0).all(axis=0)
        if fits.any():
            state = int(np.argmin(np.where(fits, s_cost, np.inf)))
            if s_cost[state] < red.below(best):
                best, found = float(s_cost[state]), (step, state)
        if len(idx) == 0:
            break
    if found is None:
        return _Found(None, np.inf, len(parents), max_states)
    column = red.base.copy()
    step, state = found
    for t in range(step, -1, -1):
        if alts[t][state] >= 0:
            column[core.image[t]] = alts[t][state]
        state = parents[t][state]
    return _Found(column, best, len(parents), max_states)


def solve_core(problem: CoreProblem, multipliers: np.ndarray, incumbent: np.ndarray | None) -> CoreResult:
    """Optimal columns for problem, given Lagrange multipliers (any μ >= 0 is exact; good ones are fast)
    and an optional feasible incumbent (columns)."""
    red = _Reduction(problem, multipliers)
    best = red.delta(incumbent) if incumbent is not None else np.inf
    widest = float(np.where(np.isfinite(red.r), red.r, 0).max(axis=1).sum()) + 1.0  # a gap that frees every alternative
    gap = min(best + red.offset, widest) * FIRST_CEILING
    rounds, milp_rounds, core_images, max_states = 0, 0, 0, 0
    while True:
        trial = gap - red.offset < best and gap < widest  # else the last round, up to the incumbent
        ceiling = gap - red.offset if trial else best
        core = red.core(ceiling)
        out = _search(red, core, ceiling)
        max_states = max(max_states, out.max_states)
        if out.overflow:
            out = _milp_search(red, core, ceiling)
            milp_rounds += 1
        rounds += 1
        core_images = max(core_images, out.core_images)
        if out.column is not None or not trial:
            break
        gap *= CEILING_GROWTH
    column = out.column if out.column is not None else incumbent
    return CoreResult(column=column, lagrangian_bound=red.bound, core_images=core_images, max_states=max_states,
                      rounds=rounds, milp_rounds=milp_rounds)
