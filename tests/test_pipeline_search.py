"""The adaptive grid (pipeline.search) against the full grid, on four real Kodak crops.

The module fixture fills the full grid of three cheap classical families once; each test
runs the adaptive search in a fresh cache and must reach the full grid's allocations, with
fewer cells.  The bounds it prunes with are checked on their own against convex curves.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from corpus import kodak_crop
from eval.images import load_rgb8
from eval.metrics import msssim_rgb
from pipeline.allocation import Budget, Transparent, prices, solve
from pipeline.cli import app
from pipeline.codecs import get_codec, ladder_candidates
from pipeline.grid import fill_cells, open_store, run_grid
from pipeline.search import FREE_S, beyond_bound, cheapest_first, gap_bound, likeliest, search_grid

torch.set_num_threads(1)
LADDER = "jpeg,webp,j2k"
CROPS = {"kodim03": (0, 0), "kodim08": (128, 64), "kodim13": (256, 128), "kodim23": (64, 0)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kodak_384x256")
    for stem, (left, top) in CROPS.items():
        kodak_crop(stem, left, top, 384, 256).save(folder / f"{stem}.png")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def full(photos, tmp_path_factory):
    return run_grid(photos, ladder_candidates(LADDER), tmp_path_factory.mktemp("full"), n_jobs=2).table


def chosen(table, target, objective):
    allocation = solve(table, target, objective, "exact")
    return sorted(zip(allocation.chosen["image"], allocation.chosen["candidate"])), allocation.objective


@pytest.mark.parametrize("targets, objective", [
    ((Budget(0.1), Budget(0.3), Budget(1.0)), "sse"),
    ((Transparent(34.0, 0.97),), "sse"),
    ((Budget(0.25),), "msssim"),
])
def test_adaptive_grid_allocates_as_the_full_grid_from_fewer_cells(photos, full, tmp_path, targets, objective):
    with_msssim = objective == "msssim" or isinstance(targets[0], Transparent)
    grid = search_grid(photos, ladder_candidates(LADDER), tmp_path, 2,
                       lambda table: [prices(table, t, objective) for t in targets], with_msssim)
    assert grid.skipped == len(full) - len(grid.table) > len(full) // 4
    assert grid.encoded == len(grid.table)  # a fresh cache: every cell it holds was encoded
    assert grid.table["msssim"].notna().all() == with_msssim  # measured only where an allocation reads it
    for target in targets:
        assert chosen(grid.table, target, objective) == chosen(full, target, objective), target.describe()


def test_cells_of_the_cache_are_used_and_measured_when_a_later_run_needs_their_msssim(photos, full, tmp_path):
    store = open_store(photos, tmp_path)
    cells = [(path, "webp-q35") for path in photos]
    records, encoded = fill_cells(store, cells, 1, with_msssim=False)
    assert encoded == 4 and all(r["msssim"] is None for r in records)
    records, encoded = fill_cells(store, cells, 1, with_msssim=True)
    assert encoded == 0  # measured from the cached bitstreams, not encoded again
    path = photos[0]
    decoded = get_codec("webp-q35").decode(store.bitstream(path.stem, "webp-q35").read_bytes())
    assert records[0]["msssim"] == pytest.approx(msssim_rgb(load_rgb8(path), decoded), abs=1e-12)
    assert records[0]["msssim"] == pytest.approx(full.set_index(["image", "candidate"]).loc[(path.stem, "webp-q35"), "msssim"], abs=1e-12)


def convex_family(rng, n: int = 9) -> list[np.ndarray]:
    """(bytes, SSE, shortfall) of n settings on a random convex, falling curve."""
    rate = np.cumsum(rng.uniform(500, 3000, n))
    sse = 1e7 * np.exp(-rate / rng.uniform(2000, 8000)) + rng.uniform(0, 1e5)
    return [np.array([r, d, 0.0]) for r, d in zip(rate, sse)]


def test_the_bounds_never_exceed_a_setting_they_stand_for_on_convex_curves():
    rng = np.random.default_rng(7)
    for _ in range(200):
        points = convex_family(rng)
        weights = np.array([[lam, 1.0, 0.0] for lam in (0.0, *rng.uniform(0, 3000, 3))])  # 0: bytes free
        cost = np.array([weights @ p for p in points])  # (settings, S)
        kept = sorted(rng.choice(len(points), size=4, replace=False))
        encoded = [points[i] for i in kept]
        for k, (lo, hi) in enumerate(zip(kept, kept[1:])):
            if hi - lo >= 2:
                assert np.all(gap_bound(encoded, k, weights) <= cost[lo + 1 : hi].min(axis=0) + 1e-6)
        if kept[-1] < len(points) - 1:
            assert np.all(beyond_bound(encoded, weights) <= cost[kept[-1] + 1 :].min(axis=0) + 1e-6)
        assert np.all(beyond_bound(points[:1], weights) <= cost[1:].min(axis=0) + 1e-6)  # the first point alone

    flat = [np.array([1000.0, 5e5, 0.0]), np.array([2000.0, 5e5, 0.0])]  # no fall: higher settings no better
    assert beyond_bound(flat, np.array([[0.0, 1.0, 0.0], [2.0, 1.0, 0.0]])).tolist() == [5e5, 5e5 + 4000]


def test_the_likeliest_setting_of_a_family_whose_two_settings_give_equal_bytes(recwarn):
    points = [np.array([900.0, 4e5, 0.0]), np.array([900.0, 3e5, 0.0]), np.array([1800.0, 1e5, 0.0])]  # tiny images
    weights = np.array([[50.0, 1.0, 0.0]])
    assert likeliest([0, 1, 4], points, range(5, 9), weights, np.array([0.0])) in range(5, 9)
    assert likeliest([0, 2], points[1::-1], range(3, 6), weights, np.array([0.0])) in range(3, 6)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_slow_families_wait_for_the_cheap_ones():
    table = pd.DataFrame({"candidate": ["jpeg-q5", "jpeg-q8", "webp-q0", "avif444-q60", "avif-q0"],
                          "enc_s": [0.002, 0.004, 0.03, 4.0, 0.4]})
    wanted = [("a", "avif444-q66"), ("a", "avif-q8"), ("b", "avif-q8")]
    assert cheapest_first(wanted, table) == [("a", "avif-q8"), ("b", "avif-q8")]  # 0.4 s against 4 s
    assert cheapest_first(wanted + [("a", "jpeg-q12")], table) == [("a", "jpeg-q12")]
    assert cheapest_first([("a", "webp-q3"), ("a", "jpeg-q12")], table) == [("a", "webp-q3"), ("a", "jpeg-q12")]  # both under FREE_S
    assert 0.003 * 4 < 0.03 < FREE_S and cheapest_first([], table) == []


def test_submission_reports_the_cells_it_skipped_and_full_grid_gives_the_same_row(photos, tmp_path):
    runner, rows = CliRunner(), []
    for flag in ([], ["--full-grid"]):
        out = tmp_path / ("full" if flag else "adaptive")
        result = runner.invoke(app, ["submission", "--images", str(photos[0].parent), "--ladder", "jpeg,webp",
                                     "--bpp", "0.3", "--out", str(out), "--cache", str(out / "cache"), *flag])
        assert result.exit_code == 0, result.output
        skipped = json.loads((out / "submission" / "manifest.json").read_text())["rd_table"]["skipped_cells"]
        assert (skipped > 0) == (not flag) and (f"{skipped} of the full grid's skipped" in result.output) == (not flag)
        rows.append((out / "leaderboard.csv").read_text().splitlines()[1])
    assert rows[0].split(",")[1:5] == rows[1].split(",")[1:5]  # PSNR, mean PSNR, MS-SSIM, bytes


@pytest.mark.parametrize("binding", [False, True])
def test_a_transparent_run_measures_every_cells_msssim_only_where_that_target_binds(photos, full, tmp_path, binding):
    table = full[full["candidate"].str.startswith(("jpeg", "webp"))]
    alone = solve(table, Transparent(34.0, None), "sse", "exact")  # the fewest bytes for the PSNR alone
    target = Transparent(34.0, round(alone.msssim + (0.002 if binding else -0.002), 4))
    expected = solve(table, target, "sse", "exact")
    assert (expected.total_bytes > alone.total_bytes) == binding
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["submission", "--images", str(photos[0].parent), "--ladder", "jpeg,webp",
                                      "--transparent", "--psnr", "34", "--msssim", str(target.msssim),
                                      "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert ("measuring every cell's MS-SSIM" in result.output) == binding
    assert pd.read_csv(out / "rd.csv")["msssim"].notna().all() == binding
    manifest = json.loads((out / "submission" / "manifest.json").read_text())
    assert sorted((c["image"], c["candidate"]) for c in manifest["images"]) == sorted(
        zip(expected.chosen["image"], expected.chosen["candidate"]))
    assert manifest["allocation"]["min_msssim"] == target.msssim
    assert ("without its constraint" in manifest["allocation"]["certificate"]) == (not binding)
