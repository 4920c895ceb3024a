"""models.widen: a wider network carried over from a trained one decodes exactly as it did."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from eval.images import load_rgb8
from models.ladder import load_ladder
from models.weights import build, export, load_into, load_state, weights_note
from models.widen import WidenError, retarget_gain_tables, retarget_gains, widen_state
from corpus import KODAK
from tiny_ladder import write_ladder

SOURCE_LAMBDAS = [0.001, 0.004, 0.016]


@pytest.fixture
def ladders(ladder_dir):
    write_ladder(ladder_dir, "tiny", 250, lambdas=SOURCE_LAMBDAS, M=24)
    write_ladder(ladder_dir, "wide", 251, lambdas=[0.016, 0.064], M=40)  # row 0 = the source's top row
    write_ladder(ladder_dir, "otherN", 252, lambdas=[0.016, 0.064], N=24, M=40)
    write_ladder(ladder_dir, "fine", 253, lambdas=[0.016, 0.064], M=40, stride=8)
    return ladder_dir


def trained_like(ladder: str) -> torch.nn.Module:
    """A network with distinct per-channel gains in every row, as training leaves them."""
    torch.manual_seed(0)
    net = build(load_ladder(ladder))
    with torch.no_grad():
        for table in (net.y_gain, net.z_gain):
            table.mul_(torch.rand_like(table) + 0.5)
        net.y_gain_inv.copy_(1 / net.y_gain * (torch.rand_like(net.y_gain) * 0.2 + 0.9))
    return net.eval()


def crop() -> torch.Tensor:
    image = load_rgb8(KODAK / "kodim05.png")[100:228, 200:328]
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)


@torch.no_grad()
def test_the_widened_network_reconstructs_exactly_and_codes_old_channels_alike(ladders):
    small = trained_like("tiny")
    wide = build(load_ladder("wide"))
    load_into(wide, widen_state(wide, small.state_dict(), tuple(SOURCE_LAMBDAS), (0.016, 0.064), "small"), "small")
    wide.eval()
    x = crop()
    before, after = small(x, torch.tensor([2.0])), wide(x, torch.tensor([0.0]))  # both at λ = 0.016
    assert torch.allclose(after["x_hat"], before["x_hat"], atol=1e-5)
    assert torch.allclose(after["likelihoods"]["z"], before["likelihoods"]["z"], atol=1e-6)
    old_channels = after["likelihoods"]["y"][:, :24]
    assert torch.allclose(old_channels, before["likelihoods"]["y"], rtol=1e-4, atol=1e-7)
    assert after["likelihoods"]["y"].shape[1] == 40
    # New units are live: the wider latent's extra channels are coded (finite, not all certain).
    extra = after["likelihoods"]["y"][:, 24:]
    assert torch.isfinite(extra).all() and (extra < 1).any()


def test_gain_rows_move_per_channel_geometrically_in_log_lambda_between_trained_rows():
    table = torch.tensor([[1.0, 3.0], [2.0, 3.0], [4.0, 3.0]])  # channel 0 doubles per λ doubling
    got = retarget_gains(table, (1.0, 2.0, 4.0), (math.sqrt(2), 4.0))
    assert got[:, 0].tolist() == pytest.approx([math.sqrt(2), 4.0], rel=1e-6)
    assert got[:, 1].tolist() == pytest.approx([3.0] * 2, rel=1e-6)


def test_gains_extrapolate_by_one_median_slope_for_all_channels():
    # Per λ doubling the channels grow ×1, ×2 and ×8; the median slope (×2 per doubling)
    # carries every channel beyond the trained rows, keeping their ratios at the edge row.
    table = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 8.0]])
    up, down = retarget_gains(table, (1.0, 2.0), (8.0, 0.25))
    assert up.tolist() == pytest.approx([4.0, 8.0, 32.0], rel=1e-6)
    assert down.tolist() == pytest.approx([0.25, 0.25, 0.25], rel=1e-6)


def test_inverse_gains_keep_each_channels_product_beyond_the_trained_rows():
    gain = torch.tensor([[1.0, 1.0, 1.0], [2.0, 4.0, 8.0]])
    inverse = torch.tensor([[2.0, 1.0, 1.0], [1.5, 0.5, 0.25]])  # products 2, 1, 1 then 3, 2, 2
    tables = {"y_gain": gain, "y_gain_inv": inverse, "z_gain": gain, "z_gain_inv": inverse}
    got = retarget_gain_tables(tables, (1.0, 2.0), (2 ** 0.5, 8.0, 0.5))
    assert got["y_gain"][1].tolist() == pytest.approx([32.0, 64.0, 128.0], rel=1e-6)  # median: ×4 per doubling
    products = got["y_gain"] * got["y_gain_inv"]
    assert products[0].tolist() == pytest.approx([6 ** 0.5, 2 ** 0.5, 2 ** 0.5], rel=1e-6)  # between rows: interpolated
    assert products[1].tolist() == pytest.approx([3.0, 2.0, 2.0], rel=1e-6)  # above: the top row's
    assert products[2].tolist() == pytest.approx([2.0, 1.0, 1.0], rel=1e-6)  # below: the bottom row's
    assert set(got) == {"y_gain", "y_gain_inv", "z_gain", "z_gain_inv"}


def test_a_target_at_a_trained_lambda_keeps_its_rows_bit_for_bit():
    """Rows added beside trained ones (the same λ kept) leave the trained points coding as before,
    signs and float16 values included, where log/exp would round."""
    gain = torch.tensor([[0.8291, -0.7476], [1.3965, 0.0529]], dtype=torch.float16)
    inverse = torch.tensor([[1.2061, 1.3379], [0.7163, 18.9]], dtype=torch.float16)
    tables = {"y_gain": gain, "y_gain_inv": inverse, "z_gain": gain, "z_gain_inv": inverse}
    got = retarget_gain_tables(tables, (0.001, 0.002), (0.0005, 0.001, 0.002, 0.004))
    for name in tables:
        assert torch.equal(got[name][1:3].to(torch.float16), tables[name]), name
    assert torch.isfinite(got["y_gain"][[0, 3]]).all() and (got["y_gain"][[0, 3]] > 0).all()  # new rows beyond


def test_an_even_channel_count_extrapolates_by_the_lower_median_slope():
    table = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 4.0, 8.0, 16.0]])  # slopes 1, 2, 3, 4 per doubling
    up = retarget_gains(table, (1.0, 2.0), (4.0,))[0]
    assert up.tolist() == pytest.approx([8.0, 16.0, 32.0, 64.0], rel=1e-6)  # ×4: slope 2
    with pytest.raises(ValueError, match="beyond must be"):
        retarget_gains(table, (1.0, 2.0), (4.0,), beyond="per-channel")


def test_only_the_latent_may_grow(ladders):
    small = trained_like("tiny").state_dict()
    with pytest.raises(WidenError, match=r"N=16, M=24 cannot widen to N=24, M=40"):
        widen_state(build(load_ladder("otherN")), small, tuple(SOURCE_LAMBDAS), (0.016, 0.064), "small")
    wide = trained_like("wide").state_dict()
    with pytest.raises(WidenError, match="only M may grow"):
        widen_state(build(load_ladder("tiny")), wide, (0.016, 0.064), tuple(SOURCE_LAMBDAS), "wide")


@torch.no_grad()
def test_a_stride_8_network_starts_from_a_stride_16_one_without_its_extra_stage(ladders):
    small = trained_like("tiny")
    fine = build(load_ladder("fine"))
    assert fine.stride == 8 and len(fine.g_a) == len(small.g_a) - 2 and len(fine.g_s) == len(small.g_s) - 2
    load_into(fine, widen_state(fine, small.state_dict(), tuple(SOURCE_LAMBDAS), (0.016, 0.064), "small"), "small")
    # Every layer outside the left-out stage kept its weights, at its new place.
    assert torch.equal(fine.g_a[0].weight, small.g_a[0].weight)  # first convolution: same place
    assert torch.equal(fine.g_a[5].weight[:24], small.g_a[7].weight)  # conv(N, M): moved down 2, widened
    assert torch.equal(fine.g_s[3].conv_a[0].conv[0].weight, small.g_s[5].conv_a[0].conv[0].weight)  # attention(N)
    assert torch.equal(fine.g_s[6].weight, small.g_s[8].weight)  # last layer
    y = fine.g_a(crop())
    assert y.shape == (1, 40, 16, 16)  # 128 px at 1/8
    assert fine.g_s(y).shape == (1, 3, 128, 128)
    with pytest.raises(WidenError, match="a stride-8 network cannot start a stride-16 one"):
        widen_state(build(load_ladder("wide")), fine.state_dict(), (0.016, 0.064), (0.016, 0.064), "fine", 8)


def test_widen_command_writes_weights_the_wider_ladder_trains_from(ladders, tmp_path):
    from pipeline.cli import app

    source = tmp_path / "tiny.safetensors"
    export(trained_like("tiny"), load_ladder("tiny"), source, note="step 7")
    out = tmp_path / "wide-init.safetensors"
    done = CliRunner().invoke(app, ["widen", "--ladder", "wide", "--from", "tiny", "--weights", str(source),
                                    "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert weights_note(out) == "widened from tiny.safetensors: step 7"
    net = build(load_ladder("wide"))
    assert load_into(net, load_state(out), out) == []
    assert net.y_gain.shape == (2, 40)
    refused = CliRunner().invoke(app, ["widen", "--ladder", "otherN", "--from", "tiny", "--weights", str(source),
                                       "--out", str(tmp_path / "x.safetensors")])
    assert refused.exit_code == 2 and "cannot widen" in refused.output and not (tmp_path / "x.safetensors").exists()
