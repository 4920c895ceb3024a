"""models.extend: shifting a ladder's rate rows down (weights and ladder file)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import models.codec as codec
import models.ladder
from eval.images import load_rgb8
from models.extend import ShiftError, shift_lambdas, shift_rows
from models.ladder import load_ladder
from models.weights import build, export, load_network, load_state, weights_note
from pipeline.cli import app
from corpus import KODAK
from tiny_ladder import write_ladder

torch.set_num_threads(1)


def test_shift_rows_extrapolates_geometrically_and_drops_the_top():
    table = torch.tensor([[1.0, 2.0], [2.0, 3.0], [4.0, 4.5]])
    shifted = shift_rows(table, 1)
    assert torch.allclose(shifted, torch.tensor([[0.5, 4 / 3], [1.0, 2.0], [2.0, 3.0]]))
    two = shift_rows(torch.tensor([[1.0], [2.0], [4.0], [8.0]]), 2)
    assert two.flatten().tolist() == [0.25, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("k", [0, 2, -1])
def test_shift_rows_refuses_shifts_that_leave_fewer_than_two_old_rows(k):
    with pytest.raises(ShiftError, match="can shift by 1 to 1 rows"):
        shift_rows(torch.ones(3, 4), k)


def test_shift_lambdas_moves_the_list_down():
    assert shift_lambdas((0.001, 0.002, 0.004), 1) == [0.0005, 0.001, 0.002]
    assert shift_lambdas((2.4, 4.6, 8.7, 16.6), 2) == pytest.approx([0.653, 1.25, 2.4, 4.6])


def test_shift_down_command_keeps_old_rates_one_row_up(ladder_dir, tmp_path, monkeypatch):
    """After a shift by one, rate r+1 decodes exactly what rate r did before; the ladder file follows."""
    path = write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.002, 0.004], N=8, M=12, rates=(0.0, 1.0))
    weights = tmp_path / "w"
    monkeypatch.setattr(models.ladder, "WEIGHTS_DIR", weights)
    ladder = load_ladder("tiny")
    torch.manual_seed(0)
    export(build(ladder), ladder, weights / "tiny.safetensors")
    image = np.asarray(load_rgb8(KODAK / "kodim07.png"))[:64, :96]
    before = codec.decode_stream(codec.encode_image(ladder.entries[0], image, weights), weights)

    shifted = tmp_path / "shifted"
    shifted.mkdir()
    result = CliRunner().invoke(app, ["shift-down", "--ladder", "tiny", "--rows", "1",
                                      "--out", str(shifted / "tiny.safetensors")])
    assert result.exit_code == 0, result.output
    assert "lambdas now [0.0005, 0.001, 0.002]" in result.output
    ladder = load_ladder("tiny")
    assert ladder.lambdas == (0.0005, 0.001, 0.002)
    assert path.read_text().count("lambdas = [0.0005, 0.001, 0.002]\n") == 1
    load_network.cache_clear()
    after = codec.decode_stream(codec.encode_image(ladder.entries[1], image, shifted), shifted)
    assert np.array_equal(before, after)
    assert weights_note(shifted / "tiny.safetensors") == "rows shifted down by 1 from tiny.safetensors (no note)"
    old, new = load_state(weights / "tiny.safetensors"), load_state(shifted / "tiny.safetensors")
    assert torch.equal(new["y_gain"][1:], old["y_gain"][:2].abs())
    assert (new["y_gain"][0].float() < old["y_gain"][0].float().abs()).all()  # finer steps below the old lowest


def test_shift_down_command_rejects_too_many_rows_in_one_line(ladder_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(models.ladder, "WEIGHTS_DIR", tmp_path)
    write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.002, 0.004], N=8, M=12)
    ladder = load_ladder("tiny")
    export(build(ladder), ladder, tmp_path / "tiny.safetensors")
    result = CliRunner().invoke(app, ["shift-down", "--ladder", "tiny", "--rows", "3",
                                      "--out", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: can shift by 1 to 1 rows, not 3"]
    assert not (tmp_path / "out.safetensors").exists()


def test_ladders_command_lists_points_and_weights(ladder_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(models.ladder, "WEIGHTS_DIR", tmp_path)
    write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.002, 0.004], N=8, M=12, rates=(0.0, 1.5))
    write_ladder(ladder_dir, "wide", 251, metric="msssim", lambdas=[3, 8], N=8, M=16)
    ladder = load_ladder("tiny")
    export(build(ladder), ladder, tmp_path / "tiny.safetensors", note="step 7")
    result = CliRunner().invoke(app, ["ladders"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "tiny (model id 250, gained-attn-checkerboard M=12, N=8, n_rates=3, metric mse, float16 weights)"
    assert lines[1:3] == ["  lambdas: 0.001, 0.002, 0.004",
                          "  points:  learned-tiny-q1 (rate 0), learned-tiny-q2 (rate 1.5)"]
    size = (tmp_path / "tiny.safetensors").stat().st_size
    assert lines[3] == f"  weights: {tmp_path / 'tiny.safetensors'} ({size:,} B; step 7)"
    assert lines[4].startswith("wide (model id 251") and lines[-1] == "  weights: not trained"


def test_rewritten_points_carry_their_kodak_bpp_into_the_listing(ladder_dir):
    path = write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.002, 0.004], N=8, M=12, rates=(0.0, 1.5))
    head = path.read_text().split("[[points]]")[0]
    models.ladder.rewrite_points(path, [(0.0, 0.0657), (1.875, 0.14761), (2.0, 0.1543)])
    assert path.read_text().startswith(head)
    ladder = load_ladder("tiny")
    assert ladder.rates == (0.0, 1.875, 2.0) and ladder.kodak_bpp == (0.0657, 0.1476, 0.1543)
    assert [e.kodak_bpp for e in ladder.entries] == [0.0657, 0.1476, 0.1543]
    listing = CliRunner().invoke(app, ["ladders"]).output.splitlines()
    assert listing[2] == ("  points:  learned-tiny-q1 (rate 0, 0.066 bpp on Kodak), learned-tiny-q2 (rate 1.875, "
                          "0.148 bpp on Kodak), learned-tiny-q3 (rate 2, 0.154 bpp on Kodak)")


def test_a_kodak_bpp_that_is_not_a_positive_number_is_refused(ladder_dir):
    path = write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.002], N=8, M=12, rates=(0.0,))
    path.write_text(path.read_text() + 'kodak_bpp = "low"\n')
    with pytest.raises(models.ladder.LadderFileError, match=f"{path}: kodak_bpp must be a positive number"):
        load_ladder("tiny")
