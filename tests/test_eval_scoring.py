"""eval.score, eval.leaderboard and eval.cli on a small submission built from Kodak crops."""

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from PIL import Image
from typer.main import get_command
from typer.testing import CliRunner

from eval.cli import app
from eval.errors import EvalInputError
from eval.leaderboard import LEADERBOARD_COLUMNS, append_rows, leaderboard_row
from eval.metrics import msssim_rgb
from eval.score import score_folders, score_pair

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"
# (source, crop box, original format): sizes differ, one original is a JPEG, one is below 161 px.
CROPS = {
    "kodim01": ((0, 0, 200, 170), "PNG"),
    "kodim02": ((100, 50, 276, 290), "JPEG"),
    "kodim03": ((300, 200, 420, 290), "PNG"),
}


def _as_array(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture
def submission(tmp_path) -> dict[str, Path]:
    """originals/, reconstructions/ (decoded JPEG q=25, as PNG) and compressed/ (the JPEG bytes)."""
    folders = {name: tmp_path / name for name in ("originals", "reconstructions", "compressed")}
    for folder in folders.values():
        folder.mkdir()
    for stem, (box, fmt) in CROPS.items():
        with Image.open(KODAK / f"{stem}.png") as img:
            crop = img.convert("RGB").crop(box)
        original = folders["originals"] / f"{stem}.{'jpg' if fmt == 'JPEG' else 'png'}"
        crop.save(original, format=fmt, quality=95)
        compressed = io.BytesIO()
        Image.open(original).save(compressed, format="JPEG", quality=25)
        (folders["compressed"] / f"{stem}.bin").write_bytes(compressed.getvalue())
        Image.open(compressed).convert("RGB").save(folders["reconstructions"] / f"{stem}.png")
    return folders


def _score(submission, with_bytes: bool = True):
    return score_folders(
        submission["originals"], submission["reconstructions"], submission["compressed"] if with_bytes else None
    )


def test_scores_spread_over_workers_in_any_order_are_the_same(submission):
    from pipeline.verify import scored  # the pipeline's verify scores on the grid's workers

    one = _score(submission)
    backwards = score_folders(submission["originals"], submission["reconstructions"], submission["compressed"],
                              lambda pairs: reversed([score_pair(*pair) for pair in pairs]))
    spread = scored(submission["originals"], submission["reconstructions"], 2, submission["compressed"])
    for scores in (backwards, spread):
        pd.testing.assert_frame_equal(scores.per_image, one.per_image)
        assert (scores.psnr, scores.msssim, scores.total_bytes) == (one.psnr, one.msssim, one.total_bytes)


def test_score_folders_matches_numpy(submission):
    scores = _score(submission)
    originals = sorted(submission["originals"].iterdir())
    a = [_as_array(p) for p in originals]
    b = [_as_array(submission["reconstructions"] / f"{p.stem}.png") for p in originals]
    sq = [np.sum((x.astype(np.float64) - y) ** 2) for x, y in zip(a, b)]
    pixels = np.array([x.shape[0] * x.shape[1] for x in a])
    nbytes = np.array([(submission["compressed"] / f"{p.stem}.bin").stat().st_size for p in originals])

    table = scores.per_image
    assert table["image"].tolist() == list(CROPS)
    assert table["width"].tolist() == [200, 176, 120] and table["height"].tolist() == [170, 240, 90]
    np.testing.assert_array_equal(table["sse"], sq)
    np.testing.assert_allclose(table["psnr"], 10 * np.log10(255**2 * 3 * pixels / np.array(sq)), atol=1e-10)
    np.testing.assert_allclose(table["msssim"], [msssim_rgb(x, y) for x, y in zip(a, b)], atol=1e-12)
    np.testing.assert_array_equal(table["bytes"], nbytes)

    assert scores.n_images == 3 and scores.total_pixels == pixels.sum()
    assert scores.psnr == pytest.approx(10 * np.log10(255**2 * 3 * pixels.sum() / np.sum(sq)), abs=1e-10)
    assert scores.psnr_mean_per_image == pytest.approx(table["psnr"].mean())
    assert scores.psnr != pytest.approx(scores.psnr_mean_per_image, abs=1e-3)
    assert scores.msssim == pytest.approx(np.dot(table["msssim"], pixels) / pixels.sum())
    assert 0.8 < scores.msssim < 1.0
    assert scores.total_bytes == nbytes.sum()
    assert scores.bpp == pytest.approx(8 * nbytes.sum() / pixels.sum())


def test_score_without_compressed_has_no_bytes(submission):
    scores = _score(submission, with_bytes=False)
    assert scores.total_bytes is None and scores.bpp is None and "bytes" not in scores.per_image


def test_identical_reconstructions_score_inf_psnr_and_unit_msssim(submission):
    for path in submission["originals"].iterdir():
        Image.open(path).save(submission["reconstructions"] / f"{path.stem}.png")
    scores = _score(submission)
    assert scores.psnr == math.inf and scores.msssim == pytest.approx(1.0)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: (s["reconstructions"] / "kodim02.png").unlink(), r"no reconstruction for original kodim02\.jpg"),
        (lambda s: Image.new("RGB", (8, 8)).save(s["reconstructions"] / "extra.png"), r"extra\.png: unexpected"),
        (lambda s: Image.new("RGB", (8, 8)).save(s["reconstructions"] / "kodim03.png"), r"size 8x8 differs .* 120x90"),
        (lambda s: (s["reconstructions"] / "kodim01.png").rename(s["reconstructions"] / "kodim01.jpg"), "must be PNG"),
        (lambda s: (s["compressed"] / "kodim01.bin").unlink(), r"no compressed file for original kodim01\.png"),
        (lambda s: (s["compressed"] / "side_info.bin").write_bytes(b"x"), r"side_info\.bin: unexpected compressed"),
    ],
)
def test_score_errors_name_the_file(submission, damage, message):
    damage(submission)
    with pytest.raises(EvalInputError, match=message) as info:
        _score(submission)
    assert "\n" not in str(info.value)


# --- leaderboard -----------------------------------------------------------------------


def test_leaderboard_row_rounds_and_leaves_mos_empty(submission):
    scores = _score(submission)
    row = leaderboard_row("team-a", scores, 12.5, None, "2024-03-01")
    assert list(row) == LEADERBOARD_COLUMNS
    assert row["PSNR"] == round(scores.psnr, 4) and row["MS-SSIM"] == round(scores.msssim, 6)
    assert row["PSNR (per-image mean)"] == round(scores.psnr_mean_per_image, 4)
    assert row["MOS"] == "" and row["Decoder Size (Bytes)"] == "" and row["Decoding Time (ms)"] == 12
    assert row["Images Size (Bytes)"] == scores.total_bytes and row["bpp"] == round(scores.bpp, 6)
    assert row["Date Submitted"] == "2024-03-01"
    with pytest.raises(EvalInputError, match="YYYY-MM-DD"):
        leaderboard_row("team-a", scores, None, None, "March 1st")


def test_append_twice_gives_two_rows_one_header(submission, tmp_path):
    scores = _score(submission)
    board = tmp_path / "leaderboard.csv"
    append_rows(board, [leaderboard_row("a", scores, None, 1000, "2024-03-01")])
    append_rows(board, [leaderboard_row("b", scores, 3.0, None, "2024-03-02")])
    with open(board, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == LEADERBOARD_COLUMNS and len(lines) == 3
    table = pd.read_csv(board)
    assert table["Entry"].tolist() == ["a", "b"] and table["MOS"].isna().all()
    assert table["PSNR"].tolist() == [round(scores.psnr, 4)] * 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_rerun_replaces_its_entrys_row_in_place(submission, tmp_path):
    scores = _score(submission)
    board = tmp_path / "leaderboard.csv"
    append_rows(board, [leaderboard_row("a", scores, 1234.56, 1000, "2024-03-01"),
                        leaderboard_row("b", scores, 3.0, None, "2024-03-01")])
    append_rows(board, [leaderboard_row("a", scores, 999.4, 2000, "2024-03-05")])
    table = pd.read_csv(board)
    assert table["Entry"].tolist() == ["a", "b"]  # replaced where it stood, not duplicated
    assert table["Decoding Time (ms)"].tolist() == [999, 3] and table["Decoder Size (Bytes)"].iloc[0] == 2000
    assert table["Date Submitted"].tolist() == ["2024-03-05", "2024-03-01"]


def test_append_refuses_a_different_header(tmp_path, submission):
    board = tmp_path / "other.csv"
    board.write_text("Entry,PSNR,bpp\nx,30,0.1\n")
    with pytest.raises(EvalInputError, match=r"column 3: 'bpp', expected 'MOS'"):
        append_rows(board, [leaderboard_row("a", _score(submission), None, None)])
    assert board.read_text() == "Entry,PSNR,bpp\nx,30,0.1\n"


# --- CLI -------------------------------------------------------------------------------


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_prints_scores_and_writes_csvs(submission, tmp_path):
    board, table = tmp_path / "board.csv", tmp_path / "per_image.csv"
    args = (submission["originals"], submission["reconstructions"], "--compressed", submission["compressed"])
    result = _run(*args, "--entry", "team-a", "--csv", board, "--per-image-csv", table,
                  "--decoding-ms", 40, "--date", "2024-03-01")
    assert result.exit_code == 0, result.output
    scores = _score(submission)
    assert f"PSNR (aggregate, one MSE over all pixels): {scores.psnr:.4f} dB" in result.stdout
    assert f"PSNR (per-image mean): {scores.psnr_mean_per_image:.4f} dB" in result.stdout
    assert f"MS-SSIM (pixel-weighted): {scores.msssim:.6f}" in result.stdout
    assert f"bpp: {scores.bpp:.6f} ({scores.total_bytes} bytes)" in result.stdout
    row = pd.read_csv(board).iloc[0]
    assert row["Entry"] == "team-a" and row["Decoding Time (ms)"] == 40 and row["Date Submitted"] == "2024-03-01"
    pd.testing.assert_frame_equal(pd.read_csv(table), scores.per_image, check_dtype=False)


def test_cli_bad_input_is_one_line_exit_2(submission):
    (submission["reconstructions"] / "kodim03.png").unlink()
    result = _run(submission["originals"], submission["reconstructions"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "kodim03" in result.stderr and "Traceback" not in result.stderr


def test_cli_csv_needs_entry(submission, tmp_path):
    result = _run(submission["originals"], submission["reconstructions"], "--csv", tmp_path / "b.csv")
    assert result.exit_code == 2 and "--entry is required" in result.stderr
    assert not (tmp_path / "b.csv").exists()


def test_cli_every_parameter_has_help():
    params = get_command(app).params
    assert len(params) == 9  # 2 arguments, 7 options (--help is added by click later)
    assert all(p.help for p in params)


def test_cli_mounts_as_eval_subcommand(submission):
    parent = typer.Typer()
    parent.command("version")(lambda: None)
    parent.add_typer(app)
    result = CliRunner().invoke(parent, ["eval", str(submission["originals"]), str(submission["reconstructions"])])
    assert result.exit_code == 0 and "PSNR (aggregate" in result.stdout
