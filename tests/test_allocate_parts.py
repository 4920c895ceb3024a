"""The allocator's building blocks against brute force: dominance filter, convex hulls, the core search."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocate import core, solve_budget, solve_transparent
from allocate.arrays import rd_arrays
from allocate.dominance import undominated
from allocate.frontier import convex_hull, hull_vertices, pareto_frontier
from allocate.synth import synthetic_rd_table

FEW = settings(max_examples=60, deadline=None, derandomize=True)
small_ints = st.integers(0, 6)


@FEW
@given(points=st.lists(st.tuples(small_ints, small_ints, small_ints), min_size=1, max_size=40), m=st.sampled_from([1, 2]))
def test_undominated_keeps_a_covering_set(points, m):
    pts = np.array(points, dtype=float)[:, : m + 1]
    kept = undominated(pts[:, 0], pts[:, 1:].T)
    assert len(set(kept.tolist())) == len(kept)
    for p in pts:  # every point is matched or beaten by a kept one
        assert (pts[kept] <= p).all(axis=1).any()
    strictly_better = [(pts[kept] <= p).all(axis=1) & (pts[kept] < p).any(axis=1) for p in pts[kept]]
    if m == 2 or len(np.unique(pts[:, 0])) == len(pts):  # no kept point is beaten (1 resource: barring cost ties)
        assert not any(b.any() for b in strictly_better)


def lower_hull(pareto: set[tuple[int, float]]) -> set[tuple[int, float]]:
    """Andrew's monotone chain over Pareto points (bytes up, cost down), collinear points dropped."""
    hull: list[tuple[int, float]] = []
    for p in sorted(pareto):
        while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0]) >= (p[1] - hull[-2][1]) * (hull[-1][0] - hull[-2][0]):
            hull.pop()
        hull.append(p)
    return set(hull)


@FEW
@given(rows=st.lists(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30)), min_size=1, max_size=9), min_size=1, max_size=6))
def test_hull_vertices_match_monotone_chain(rows):
    width = max(len(r) for r in rows)
    b = np.full((len(rows), width), 2**53, dtype=np.int64)
    c = np.full((len(rows), width), np.inf)
    for i, r in enumerate(rows):
        b[i, : len(r)] = [x for x, _ in r]
        c[i, : len(r)] = [y for _, y in r]
    front = pareto_frontier(b, c, tiebreak=np.zeros_like(c))
    mask = hull_vertices(front)
    for i, r in enumerate(rows):
        pareto = {(int(front.bytes[i, j]), float(front.cost[i, j])) for j in range(front.size[i])}
        got = {(int(front.bytes[i, j]), float(front.cost[i, j])) for j in np.flatnonzero(mask[i])}
        assert got == lower_hull(pareto)
    hull = convex_hull(front)
    assert (np.diff(hull.seg_efficiency) <= 0).all() and (hull.seg_bytes > 0).all()


def test_frontier_is_strict_and_keeps_the_best_tie():
    b = np.array([[5, 5, 3, 9, 9]])
    c = np.array([[4.0, 4.0, 7.0, 1.0, 2.0]])
    tiebreak = np.array([[2.0, 1.0, 0.0, 0.0, 0.0]])
    front = pareto_frontier(b, c, tiebreak)
    assert front.slot[0, : front.size[0]].tolist() == [2, 1, 3]  # slot 1 beats its twin 0 on the tie-break


@pytest.mark.parametrize("mode", ["budget", "transparent"])
def test_core_falls_back_to_highs_and_stays_exact(monkeypatch, mode):
    table = synthetic_rd_table(60, 16, seed=5)
    solve = (lambda s: solve_budget(table, 1_200_000, solver=s)) if mode == "budget" else (lambda s: solve_transparent(table, solver=s))
    reference = solve("milp")
    monkeypatch.setattr(core, "MAX_STATES", {1: 3, 2: 3})
    exact = solve("exact")
    assert exact.details["milp_rounds"] >= 1
    assert exact.objective == pytest.approx(reference.objective, rel=1e-9) and exact.gap == 0


def test_core_without_incumbent_finds_the_optimum():
    table = synthetic_rd_table(20, 6, seed=8)
    rd = rd_arrays(table)
    cost = rd.sse
    problem = core.CoreProblem(cost=cost, res=rd.bytes[None].astype(float), cap=np.array([400_000.0]))
    with_incumbent = solve_budget(table, 400_000)
    out = core.solve_core(problem, np.array([1e4]), incumbent=None)  # any multiplier is exact, even a poor one
    assert rd.take(cost, out.column).sum() == pytest.approx(with_incumbent.objective, rel=1e-12)
    assert rd.take(rd.bytes, out.column).sum() <= 400_000
