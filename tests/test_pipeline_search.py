"""The adaptive grid (pipeline.search) against the full grid, on four real Kodak crops.

The module fixture fills the full grid of three cheap classical families once; each test
runs the adaptive search in a fresh cache and must reach the full grid's allocations, with
fewer cells.  The bounds it prunes with are checked on their own against convex curves.
"""

from __future__ import annotations

import json
from pathlib import Path

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
from pipeline.search import FREE_S, TOLERANCE, beyond_bound, cheapest_first, gap_bound, likeliest, predicted, search_grid

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
def full_grid(photos, tmp_path_factory):
    return run_grid(photos, ladder_candidates(LADDER), tmp_path_factory.mktemp("full"), n_jobs=2)


@pytest.fixture(scope="module")
def full(full_grid):
    return full_grid.table


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
    pricing = lambda table: [prices(table, t, objective) for t in targets]  # noqa: E731
    grid = search_grid(photos, ladder_candidates(LADDER), tmp_path / "exact", 2, pricing, with_msssim, tolerance=None)
    assert grid.skipped == len(full) - len(grid.table) > len(full) // 4
    assert grid.encoded == len(grid.table)  # a fresh cache: every cell it holds was encoded
    assert grid.table["msssim"].notna().all() == with_msssim  # measured only where an allocation reads it
    assert grid.search == "exact search"
    for target in targets:
        assert chosen(grid.table, target, objective) == chosen(full, target, objective), target.describe()

    # With a tolerance the search also asks its model's prediction between encoded settings:
    # fewer cells, and here the same allocations.
    tolerant = search_grid(photos, ladder_candidates(LADDER), tmp_path / "tolerant", 2, pricing, with_msssim, TOLERANCE)
    assert tolerant.search == f"search within tolerance {TOLERANCE:g}"
    assert len(tolerant.table) < len(grid.table)
    for target in targets:
        assert chosen(tolerant.table, target, objective) == chosen(full, target, objective), target.describe()


def test_a_replay_over_the_full_grid_asks_for_the_cells_the_search_encodes(photos, full_grid, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    from replay_search import Replay

    pricing = lambda table: [prices(table, Budget(0.3), "sse")]  # noqa: E731
    real = search_grid(photos, ladder_candidates(LADDER), tmp_path / "real", 2, pricing, False)
    replay = Replay(full_grid.store)
    replayed = search_grid(photos, ladder_candidates(LADDER), tmp_path / "replay", 2, pricing, False, fill=replay)
    assert replayed.table[["image", "candidate", "bytes", "sse"]].equals(real.table[["image", "candidate", "bytes", "sse"]])
    assert sum(map(len, replay.rounds)) == replayed.encoded == real.encoded
    seconds = full_grid.table.set_index(["image", "candidate"]).loc[list(zip(real.table["image"], real.table["candidate"]))]
    assert sum(map(sum, replay.rounds)) == pytest.approx((seconds["enc_s"] + seconds["dec_s"]).sum())


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


def test_the_prediction_is_exact_on_a_curve_of_its_own_form():
    settings = [0, 2, 5]
    rate = 800.0 * 1.4 ** np.arange(9)  # bytes geometric in the setting
    sse = 3e8 * rate**-1.3  # log-SSE linear in log-bytes
    points = [np.array([rate[k], sse[k], 0.0]) for k in settings]
    weights = np.array([[40.0, 1.0, 0.0], [400.0, 1.0, 0.0]])
    reach = np.array([1e5, 2e5])
    expected = (weights[:, :1] * rate + sse - reach[:, None]).min(axis=0)  # the nearer of the two Lagrangians
    choices = range(6, 9)
    assert predicted(settings, points, choices, weights, reach) == pytest.approx(expected[6:], rel=1e-9)
    assert predicted(settings, points, range(3, 5), weights, reach) == pytest.approx(expected[3:5], rel=1e-9)
    assert likeliest(settings, points, range(6, 9), weights, reach) == 6 + int(np.argmin(expected[6:]))


def test_slow_families_wait_for_the_cheap_ones():
    table = pd.DataFrame({"candidate": ["jpeg-q5", "jpeg-q8", "webp-q0", "avif444-q60", "avif-q0"],
                          "enc_s": [0.002, 0.004, 0.03, 4.0, 0.4]})
    wanted = [("a", "avif444-q66"), ("a", "avif-q8"), ("b", "avif-q8")]
    assert cheapest_first(wanted, table) == [("a", "avif-q8"), ("b", "avif-q8")]  # 0.4 s against 4 s
    assert cheapest_first(wanted + [("a", "jpeg-q12")], table) == [("a", "jpeg-q12")]
    assert cheapest_first([("a", "webp-q3"), ("a", "jpeg-q12")], table) == [("a", "webp-q3"), ("a", "jpeg-q12")]  # both under FREE_S
    assert 0.003 * 4 < 0.03 < FREE_S and cheapest_first([], table) == []


@pytest.mark.parametrize("flag, search", [
    ([], "exact search"), (["--full-grid"], "full grid"),
    (["--search-tolerance", f"{TOLERANCE:g}"], f"search within tolerance {TOLERANCE:g}"),
])
def test_submission_reports_the_cells_it_skipped_and_how(photos, tmp_path, flag, search):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["submission", "--images", str(photos[0].parent), "--ladder", "jpeg,webp",
                                      "--bpp", "0.3", "--out", str(out), "--cache", str(out / "cache"), *flag])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "submission" / "manifest.json").read_text())["rd_table"]
    assert table["search"] == search
    skipped = table["skipped_cells"]
    assert (skipped > 0) == (search != "full grid") and (f"{skipped} of the full grid's skipped by the {search}" in result.output) == (skipped > 0)
    assert skipped == len(photos) * len(ladder_candidates("jpeg,webp")) - len(pd.read_csv(out / "rd.csv"))


def test_a_budget_run_leaves_its_chosen_cells_msssim_to_verification(photos, tmp_path):
    """Nothing measured twice: a budget allocation reads no MS-SSIM, so none is measured before
    packaging (the manifest says null, strict JSON); the report's comes from the decoded package."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["submission", "--images", str(photos[0].parent), "--ladder", "jpeg,webp",
                                      "--bpp", "0.3", "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    text = (out / "submission" / "manifest.json").read_text()
    manifest = json.loads(text, parse_constant=lambda word: pytest.fail(f"manifest.json holds {word}"))
    assert manifest["allocation"]["msssim"] is None and all(cell["msssim"] is None for cell in manifest["images"])
    reported = pd.read_csv(out / "per_image.csv").set_index("image")["msssim"]
    for photo in photos:
        decoded = load_rgb8(out / "decoded" / f"{photo.stem}.png")
        assert reported[photo.stem] == pytest.approx(msssim_rgb(load_rgb8(photo), decoded), abs=1e-9)


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
