"""The exact allocator against brute force (tiny tables) and scipy milp (realistic tables), plus edge cases."""

import json
from itertools import product

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocate import (InfeasibleError, NoSolutionError, cap_from_bpp, solve_budget, solve_transparent)
from allocate.metrics import aggregate_psnr, sse_cap, weighted_msssim
from allocate.synth import synthetic_rd_table
from allocate.table import total_pixels

FEW = settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def row(image: str, candidate: str, bytes_: int, sse: float, msssim: float = 0.9, pixels: int = 100) -> dict:
    return {"image": image, "candidate": candidate, "family": candidate.split("-")[0], "bytes": bytes_,
            "pixels": pixels, "sse": float(sse), "msssim": msssim}


@st.composite
def small_tables(draw, max_images: int = 5, max_candidates: int = 4) -> pd.DataFrame:
    """Tiny tables with small integer bytes and SSE: ties, duplicates and dominated candidates abound."""
    rows = []
    for i in range(draw(st.integers(1, max_images))):
        pixels = draw(st.sampled_from([64, 100, 256]))
        for j in range(draw(st.integers(1, max_candidates))):
            rows.append(row(f"im{i}", f"c-{j}", draw(st.integers(1, 40)), draw(st.integers(0, 60)),
                            draw(st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 1.0])), pixels))
    return pd.DataFrame(rows)


def combos(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every allocation of a tiny table: total bytes, SSE, MS-SSIM shortfall Σ pixels·(1 − msssim), and pixels."""
    groups = [g for _, g in table.groupby("image", sort=True)]
    loss = [g["pixels"].to_numpy() * (1 - g["msssim"].to_numpy()) for g in groups]
    totals = [np.array([sum(c) for c in product(*parts)]) for parts in
              ([g["bytes"].to_numpy() for g in groups], [g["sse"].to_numpy() for g in groups], loss)]
    return *totals, total_pixels(table)


# ---- brute force on tiny tables -------------------------------------------------------------------------------

@FEW
@given(table=small_tables(), data=st.data())
def test_budget_matches_brute_force(table, data):
    n_bytes, sse, loss, _ = combos(table)
    cap = data.draw(st.integers(0, int(n_bytes.max()) + 3))
    objective = data.draw(st.sampled_from(["sse", "msssim"]))
    if n_bytes.min() > cap:
        with pytest.raises(InfeasibleError, match=f"smallest reachable total is {int(n_bytes.min()):,} bytes"):
            solve_budget(table, cap, objective)
        return
    cost = sse if objective == "sse" else loss
    best = cost[n_bytes <= cap].min()
    exact = solve_budget(table, cap, objective)
    greedy = solve_budget(table, cap, objective, solver="greedy")
    assert exact.total_bytes <= cap and greedy.total_bytes <= cap
    assert exact.objective == pytest.approx(best, rel=1e-12, abs=1e-9)
    assert exact.gap == 0 and exact.lower_bound == exact.objective
    assert greedy.objective >= exact.objective - 1e-9
    assert greedy.lower_bound <= best + 1e-9  # the greedy's certificate is a true lower bound
    assert list(exact.chosen["image"]) == sorted(table["image"].unique())


@FEW
@given(table=small_tables(), data=st.data())
def test_transparent_matches_brute_force(table, data):
    n_bytes, sse, loss, pixels = combos(table)
    pick = data.draw(st.integers(0, len(n_bytes) - 1))  # targets that this allocation just meets
    min_psnr = aggregate_psnr(sse[pick], pixels) - 1e-9
    min_msssim = 1 - loss[pick] / pixels - 1e-12
    meets = (sse <= sse_cap(min_psnr, pixels)) & (loss <= (1 - min_msssim) * pixels)
    exact = solve_transparent(table, min_psnr, min_msssim)
    assert exact.total_bytes == n_bytes[meets].min() and exact.gap == 0
    assert exact.psnr >= min_psnr and exact.msssim >= min_msssim - 1e-12


@FEW
@given(table=small_tables(), data=st.data())
def test_transparent_psnr_alone_matches_brute_force_without_msssim(table, data):
    n_bytes, sse, _, pixels = combos(table)
    min_psnr = aggregate_psnr(sse[data.draw(st.integers(0, len(n_bytes) - 1))], pixels) - 1e-9
    exact = solve_transparent(table.assign(msssim=float("nan")), min_psnr, None)  # MS-SSIM unmeasured
    assert exact.total_bytes == n_bytes[sse <= sse_cap(min_psnr, pixels)].min() and exact.gap == 0
    assert exact.psnr >= min_psnr and exact.min_msssim is None


# ---- scipy milp on realistic tables ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_images, n_candidates, seed", [(24, 5, 0), (40, 16, 1), (120, 16, 2), (60, 40, 3)])
@pytest.mark.parametrize("bpp", [0.05, 0.15, 0.4])
@pytest.mark.parametrize("objective", ["sse", "msssim"])
def test_budget_matches_milp(n_images, n_candidates, seed, bpp, objective):
    table = synthetic_rd_table(n_images, n_candidates, seed=seed)
    cap = cap_from_bpp(bpp, total_pixels(table))
    exact = solve_budget(table, cap, objective)
    reference = solve_budget(table, cap, objective, solver="milp")
    greedy = solve_budget(table, cap, objective, solver="greedy")
    assert max(exact.total_bytes, reference.total_bytes, greedy.total_bytes) <= cap
    assert exact.objective == pytest.approx(reference.objective, rel=1e-9)
    assert exact.gap == 0
    assert exact.objective <= greedy.objective and greedy.lower_bound <= exact.objective * (1 + 1e-12)


@pytest.mark.parametrize("n_images, n_candidates, seed", [(24, 5, 4), (60, 16, 5), (150, 16, 6), (40, 40, 7)])
@pytest.mark.parametrize("min_psnr, min_msssim", [(40.0, 0.993), (37.0, 0.99), (42.0, 0.985)])
def test_transparent_matches_milp(n_images, n_candidates, seed, min_psnr, min_msssim):
    table = synthetic_rd_table(n_images, n_candidates, seed=seed)
    exact = solve_transparent(table, min_psnr, min_msssim)
    reference = solve_transparent(table, min_psnr, min_msssim, solver="milp")
    assert exact.total_bytes == reference.total_bytes and exact.gap == 0
    assert exact.psnr >= min_psnr and exact.msssim >= min_msssim
    try:
        greedy = solve_transparent(table, min_psnr, min_msssim, solver="greedy")
    except NoSolutionError:
        return
    assert greedy.total_bytes >= exact.total_bytes >= greedy.lower_bound
    assert greedy.psnr >= min_psnr and greedy.msssim >= min_msssim


# ---- edge cases -----------------------------------------------------------------------------------------------

def test_identical_images_tie_and_match_milp():
    one = synthetic_rd_table(1, 8, seed=11)
    table = pd.concat([one.assign(image=f"copy{i:02d}") for i in range(30)], ignore_index=True)
    sizes = np.sort(one["bytes"].to_numpy())
    for cap in (30 * sizes[2] + 7, 17 * sizes[3] + 13 * sizes[4], 30 * sizes[5] - 1):
        exact, reference = solve_budget(table, cap), solve_budget(table, cap, solver="milp")
        assert exact.total_bytes <= cap and exact.objective == pytest.approx(reference.objective, rel=1e-12)


def test_single_candidate_images_are_forced():
    table = pd.DataFrame([row("a", "x-1", 10, 5.0), row("b", "x-1", 20, 7.0), row("b", "x-2", 30, 1.0),
                          row("c", "y-1", 5, 9.0)])
    a = solve_budget(table, 44)
    assert a.chosen["candidate"].tolist() == ["x-1", "x-1", "y-1"] and a.total_bytes == 35
    assert solve_budget(table, 45).chosen["candidate"].tolist() == ["x-1", "x-2", "y-1"]
    with pytest.raises(InfeasibleError, match="smallest reachable total is 35 bytes"):
        solve_budget(table, 34)


def test_cap_exactly_at_a_feasible_total_is_used():
    table = pd.DataFrame([row("a", "x-1", 10, 50.0), row("a", "x-2", 17, 20.0),
                          row("b", "x-1", 10, 60.0), row("b", "x-2", 13, 40.0)])
    assert solve_budget(table, 29).total_bytes == 27  # a at x-2, b at x-1: SSE 80 beats 90 (30 would take both)
    a = solve_budget(table, 27)
    assert a.total_bytes == 27 and a.objective == 80.0
    b = solve_budget(table, 20)  # exactly the smallest candidates
    assert b.total_bytes == 20 and b.objective == 110.0


def test_duplicated_and_dominated_candidates():
    table = pd.DataFrame([
        row("a", "x-1", 10, 50.0), row("a", "dup-1", 10, 50.0),  # identical numbers, different names
        row("a", "bad-1", 12, 55.0),  # dominated: more bytes, more SSE
        row("a", "x-2", 20, 10.0), row("b", "x-1", 8, 30.0), row("b", "x-2", 16, 12.0),
    ])
    for cap in range(18, 40):
        a = solve_budget(table, cap)
        assert "bad-1" not in set(a.chosen["candidate"])
        assert a.objective == solve_budget(table, cap, solver="milp").objective


def test_slack_cap_takes_every_images_best():
    table = synthetic_rd_table(30, 12, seed=3)
    a = solve_budget(table, 10**12)
    assert a.objective == pytest.approx(table.groupby("image")["sse"].min().sum(), rel=1e-12)
    assert a.gap == 0 and a.details["multiplier"] == 0.0


def test_allocation_fields_follow_the_conventions():
    table = synthetic_rd_table(24, 6, seed=9)
    a = solve_budget(table, cap_from_bpp(0.15, total_pixels(table)))
    chosen = a.chosen
    assert list(chosen.columns) == list(table.columns)  # extra columns kept
    assert chosen["image"].is_monotonic_increasing and chosen["image"].is_unique and len(chosen) == 24
    pixels = int(chosen["pixels"].sum())
    assert a.psnr == pytest.approx(10 * np.log10(255**2 / (chosen["sse"].sum() / (3 * pixels))))
    assert a.msssim == pytest.approx(weighted_msssim(chosen["msssim"], chosen["pixels"]))
    assert a.bpp == pytest.approx(8 * a.total_bytes / pixels) and a.total_bytes == chosen["bytes"].sum()
    manifest = json.loads(json.dumps(a.to_dict()))
    assert manifest["gap"] == 0 and len(manifest["choices"]) == 24 and manifest["mode"] == "budget"
    assert manifest["choices"][0]["candidate"] == chosen["candidate"].iloc[0]


def test_transparent_infeasible_says_what_is_reachable():
    table = pd.DataFrame([row("a", "p-1", 10, 100.0, 0.95), row("a", "p-2", 99, 1.0, 0.90)])
    best_psnr = aggregate_psnr(1.0, 100)
    with pytest.raises(InfeasibleError, match=f"best reachable aggregate PSNR is {best_psnr:.4f} dB"):
        solve_transparent(table, min_psnr=best_psnr + 1, min_msssim=0.5)
    with pytest.raises(InfeasibleError, match="best reachable pixel-weighted MS-SSIM is 0.950000"):
        solve_transparent(table, min_psnr=0, min_msssim=0.96)
    for solver in ("exact", "milp"):  # each target reachable, never both
        with pytest.raises(InfeasibleError, match="each reachable on their own, but no allocation reaches both"):
            solve_transparent(table, min_psnr=best_psnr - 0.1, min_msssim=0.94, solver=solver)


def test_unknown_solver_or_objective():
    table = pd.DataFrame([row("a", "x-1", 10, 5.0)])
    with pytest.raises(ValueError, match="solver must be one of exact, milp, greedy"):
        solve_budget(table, 10, solver="dp")
    with pytest.raises(ValueError, match="objective must be one of sse, msssim"):
        solve_budget(table, 10, objective="psnr")
