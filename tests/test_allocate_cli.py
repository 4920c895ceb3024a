"""The `allocate` CLI and offline tuning: outputs, files, exit codes."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from allocate import cap_from_bpp, solve_budget
from allocate.cli import app
from allocate.synth import synthetic_rd_table
from allocate.table import total_pixels
from allocate.tune import best_per_size, budget_grid, ladder_subsets, sweep, uniform_choices

runner = CliRunner()


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_rd_table(24, 6, seed=5)


@pytest.fixture
def table_csv(tmp_path, table):
    path = tmp_path / "rd.csv"
    table.to_csv(path, index=False)
    return path


def test_solve_prints_solution_and_certificate_and_writes_json(table_csv, table, tmp_path):
    out = tmp_path / "choice.json"
    result = runner.invoke(app, ["solve", str(table_csv), "--bpp", "0.15", "--out", str(out)])
    assert result.exit_code == 0, result.output
    cap = cap_from_bpp(0.15, total_pixels(table))
    expected = solve_budget(table, cap)
    assert f"budget: {cap:,} bytes" in result.stdout and "gap 0, optimal" in result.stdout
    assert f"aggregate PSNR: {expected.psnr:.4f} dB" in result.stdout
    manifest = json.loads(out.read_text())
    assert manifest["total_bytes"] == expected.total_bytes <= cap and manifest["cap_bytes"] == cap
    assert [c["candidate"] for c in manifest["choices"]] == expected.chosen["candidate"].tolist()


def test_solve_explicit_bytes_and_other_solvers(table_csv):
    for solver in ("milp", "greedy"):
        result = runner.invoke(app, ["solve", str(table_csv), "--bytes", "400000", "--solver", solver, "--show", "0"])
        assert result.exit_code == 0 and "budget: 400,000 bytes" in result.stdout and f"solver: {solver}" in result.stdout
    result = runner.invoke(app, ["solve", str(table_csv), "--transparent", "--psnr", "38", "--msssim", "0.99"])
    assert result.exit_code == 0 and "transparent: PSNR >= 38 dB and MS-SSIM >= 0.99" in result.stdout


@pytest.mark.parametrize("args, phrase", [
    (["--bytes", "1000"], "no allocation fits 1,000 bytes (0.0003 bpp): the smallest reachable total is"),
    (["--transparent", "--psnr", "60"], "PSNR >= 60.0 dB is out of reach: the best reachable aggregate PSNR is"),
])
def test_infeasible_is_one_line_on_stderr_with_exit_2(table_csv, args, phrase):
    result = runner.invoke(app, ["solve", str(table_csv), *args])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and phrase in result.stderr and result.stderr.count("\n") == 1


def test_bad_table_and_bad_option_exit_2(tmp_path, table):
    bad = tmp_path / "bad.csv"
    table.drop(columns=["sse"]).to_csv(bad, index=False)
    result = runner.invoke(app, ["solve", str(bad)])
    assert result.exit_code == 2 and f"error: {bad}: missing column(s) sse" in result.stderr
    assert runner.invoke(app, ["solve", str(bad), "--solver", "dp"]).exit_code == 2


def test_every_option_has_help():
    for command in ("solve", "tune"):
        text = runner.invoke(app, [command, "--help"], terminal_width=200).stdout
        for option in {"solve": ["--bpp", "--bytes", "--objective", "--transparent", "--psnr", "--msssim", "--solver", "--out"],
                       "tune": ["--bpp-min", "--bpp-max", "--steps", "--out-dir", "--subsets", "--solvers"]}[command]:
            assert option in text


def test_tune_writes_csvs_and_plots(table_csv, tmp_path):
    out_dir = tmp_path / "tune"
    result = runner.invoke(app, ["tune", str(table_csv), "--steps", "3", "--out-dir", str(out_dir)])
    assert result.exit_code == 0, result.output
    for name in ("sweep.csv", "leaderboard.csv", "subsets.csv", "psnr_vs_bpp.png", "chosen_candidates.png",
                 "bytes_per_image.png", "choice.json"):
        assert (out_dir / name).stat().st_size > 0
    from eval.leaderboard import LEADERBOARD_COLUMNS

    board = pd.read_csv(out_dir / "leaderboard.csv")
    assert list(board.columns) == LEADERBOARD_COLUMNS and board["MOS"].isna().all()
    assert len(board) == 3 * 3 and board["Entry"].str.contains("exact @ 0.05 bpp", regex=False).any()


def test_sweep_ranks_exact_first(table):
    bpps = budget_grid(0.05, 0.6, 4)
    assert bpps == [0.05, 0.233333, 0.416667, 0.6]
    swept = sweep(table, bpps, ["exact", "greedy"])
    for _, rows in swept.groupby("target_bpp"):
        psnr = rows.set_index("strategy")["psnr"]
        assert psnr["exact"] >= psnr["greedy"] - 1e-12 and psnr["exact"] >= psnr["naive"] - 1e-12
        assert (rows["total_bytes"] <= rows["cap_bytes"]).all()
    naive = swept[swept["strategy"] == "naive"].iloc[0]
    uniform = uniform_choices(table)[naive["note"]]
    assert uniform["bytes"].sum() == naive["total_bytes"] <= naive["cap_bytes"]


def test_ladder_subsets(table):
    cap = cap_from_bpp(0.15, total_pixels(table))
    full = solve_budget(table, cap)
    every = ladder_subsets(table, cap, "all")
    assert len(every) == 2**6 - 1
    ok = every[every["status"] == "ok"]
    assert (ok["delta_psnr"] <= 1e-9).all() and ok["delta_psnr"].max() == pytest.approx(0, abs=1e-9)
    best = best_per_size(every)
    assert best["psnr"].is_monotonic_increasing and best["psnr"].iloc[-1] == pytest.approx(full.psnr)
    drop = ladder_subsets(table, cap, "drop-one")
    assert sorted(drop["dropped"]) == sorted(table["candidate"].unique()) and (drop["n_models"] == 5).all()
