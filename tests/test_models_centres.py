"""models.centres: learnable reconstruction centres (ladder flag ``centres = true``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eval.images import load_rgb8
from models.ladder import load_ladder
from models.train import TrainConfig, Trainer
from models.weights import build, export, load_into, load_state
from tiny_ladder import write_ladder

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"


@pytest.fixture
def nets(ladder_dir, tmp_path):
    """A plain tiny network and the same weights with centres switched on."""
    write_ladder(ladder_dir, "tiny", 250, lambdas=[0.001, 0.004, 0.016], N=16, M=24)
    write_ladder(ladder_dir, "tinyc", 253, lambdas=[0.001, 0.004, 0.016], N=16, M=24, flags=("centres",))
    torch.manual_seed(0)
    plain = build(load_ladder("tiny"))
    export(plain, load_ladder("tiny"), tmp_path / "plain.safetensors")
    plain = build(load_ladder("tiny"))
    load_into(plain, load_state(tmp_path / "plain.safetensors"), tmp_path)
    centred = build(load_ladder("tinyc"))
    new = load_into(centred, load_state(tmp_path / "plain.safetensors"), tmp_path, allow_new=True)
    assert new == ["latent_codec.y.y.centre_shift"]
    return plain.ready_for_coding(), centred.ready_for_coding(), tmp_path


def crop() -> torch.Tensor:
    image = load_rgb8(KODAK / "kodim23.png")[100:164, 200:328]
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)


def code(net: torch.nn.Module, x: torch.Tensor, rate: float) -> tuple[list, torch.Tensor]:
    with torch.no_grad():
        out = net.compress(x, rate)
        return out["strings"], net.decompress(out["strings"], out["shape"], rate)


def test_zero_shift_is_exactly_the_plain_codec(nets):
    plain, centred, _ = nets
    x = crop()
    assert code(plain, x, 1.0)[0] == code(centred, x, 1.0)[0]
    assert torch.equal(code(plain, x, 1.0)[1], code(centred, x, 1.0)[1])
    with torch.no_grad():
        assert torch.allclose(plain(x, torch.tensor([1.5]))["x_hat"], centred(x, torch.tensor([1.5]))["x_hat"])


def test_a_shift_keeps_the_anchor_bits_and_decodes_what_training_computes(nets):
    plain, centred, _ = nets
    with torch.no_grad():
        centred.latent_codec.latent_codec["y"].latent_codec["y"].centre_shift.fill_(0.03)  # δ = 0.3 bin
    x = crop()
    (plain_strings, plain_x), (strings, decoded) = code(plain, x, 2.0), code(centred, x, 2.0)
    anchors, non_anchors, hyper = strings  # GainHyperpriorLatentCodec's order
    assert anchors == plain_strings[0] and hyper == plain_strings[2]  # same bins, same bytes
    assert non_anchors != plain_strings[1]  # their context saw the shifted anchors
    assert not torch.equal(decoded, plain_x)
    # The decoder reconstructs exactly what the training forward (eval mode) computes.
    with torch.no_grad():
        forward = centred(x, torch.tensor([2.0]))["x_hat"].clamp(0, 1)
    assert (forward - decoded).abs().max() < 1e-4


def test_training_moves_the_centres(nets):
    _, _, tmp_path = nets
    cfg = TrainConfig(ladder="tinyc", data=[KODAK], out=tmp_path / "run", steps=3, batch=2, crop=64, lr=1e-2,
                      threads=1, checkpoint_s=1e9, log_every=1, resume=False, bf16=False,
                      init=tmp_path / "plain.safetensors")
    trainer = Trainer(cfg)
    shift = trainer.net.latent_codec.latent_codec["y"].latent_codec["y"].centre_shift
    assert torch.count_nonzero(shift) == 0
    trainer.train_step(crop().repeat(2, 1, 1, 1))
    assert torch.count_nonzero(shift) > 0  # channels with nonzero bins got a gradient
