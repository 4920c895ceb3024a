"""models.refine: encoder-side latent refinement, with the ``tiny`` ladder (``conftest``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eval.images import load_rgb8
from models.codec import pad_to_multiple, coded_rate, decode_stream, encode_image, encode_latent, to_tensor
from models.ladder import LadderEntry
from models.refine import Refinement, rd_cost, refine_latent, split_name

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"
REFINE = Refinement(steps=15, lr=0.05)
SGA = Refinement(steps=15, method="sga", lr=0.05, decay=1.0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return load_rgb8(KODAK / "kodim23.png")[100:196, 200:360]  # 96×160: padded to 128×192


def cost(entry: LadderEntry, image: np.ndarray, data: bytes, weights: Path) -> float:
    return rd_cost(entry.ladder, coded_rate(entry), image, decode_stream(data, weights), len(data))


def test_lambda_of_a_rate_is_geometric_between_rows(tiny):
    ladder = tiny.ladder
    assert ladder.lambda_at(0.0) == ladder.lambdas[0] and ladder.lambda_at(4.0) == pytest.approx(ladder.lambdas[4])
    assert ladder.lambda_at(1.5) == pytest.approx((ladder.lambdas[1] * ladder.lambdas[2]) ** 0.5)
    assert ladder.lambda_at(-1.0) == ladder.lambdas[0] and ladder.lambda_at(9.0) == pytest.approx(ladder.lambdas[4])


@pytest.mark.parametrize("refine", [REFINE, SGA], ids=["adam", "sga"])
def test_refined_latent_codes_cheaper_and_the_plain_decoder_reads_it(tiny, image, refine):
    entry = LadderEntry(tiny.ladder, 2, 2.0)
    x = pad_to_multiple(to_tensor(image))
    plain_y, plain_z = refine_latent(tiny.net, tiny.ladder, x, image.shape[:2], coded_rate(entry), Refinement(steps=0))
    refined_y, refined_z = refine_latent(tiny.net, tiny.ladder, x, image.shape[:2], coded_rate(entry), refine)
    assert plain_z is None and (refined_z is not None) == (refine.method == "sga")  # SGA optimises z too
    assert not torch.equal(plain_y, refined_y)
    plain = encode_latent(entry, image, None, tiny.weights).data
    assert encode_latent(entry, image, (plain_y, None), tiny.weights).data == plain  # 0 steps = g_a(x) exactly
    refined = encode_latent(entry, image, (refined_y, refined_z), tiny.weights).data
    assert decode_stream(refined, tiny.weights).shape == image.shape
    # A 30-step network's g_a is far from each image's best latent: refinement lowers the real λ·D + R.
    assert cost(entry, image, refined, tiny.weights) < 0.97 * cost(entry, image, plain, tiny.weights)


@pytest.mark.parametrize("refine", [REFINE, SGA], ids=["adam", "sga"])
def test_refinement_is_deterministic_and_leaves_network_and_rng_as_they_were(tiny, image, refine):
    net = tiny.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.requires_grad for p in net.parameters()]
    torch.manual_seed(123)
    x = pad_to_multiple(to_tensor(image))
    first = refine_latent(net, tiny.ladder, x, image.shape[:2], 1.0, refine)
    after_first = torch.rand(1)  # the caller's random stream continues as if nothing ran
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after_first)
    again = refine_latent(net, tiny.ladder, x, image.shape[:2], 1.0, refine)
    assert all(a is b is None or torch.equal(a, b) for a, b in zip(again, first))
    assert not net.training and [p.requires_grad for p in net.parameters()] == grads
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("lr", [0.05, 50.0])
def test_the_encoder_ships_the_cheaper_stream(tiny, image, lr):
    """lr 50 wrecks the latent: the encoder must then fall back to the plain stream."""
    entry = LadderEntry(tiny.ladder, 1, 1.0)
    plain = encode_image(entry, image, tiny.weights)
    shipped = encode_image(entry, image, tiny.weights, Refinement(steps=REFINE.steps, lr=lr))
    if lr > 1:
        assert shipped == plain
    else:
        assert shipped != plain and cost(entry, image, shipped, tiny.weights) < cost(entry, image, plain, tiny.weights)


@pytest.mark.parametrize("spec, expected", [("25", Refinement(steps=25)), ("0", Refinement()),
                                            ("sga:500", Refinement(steps=500, method="sga", lr=0.005, decay=1.0)),
                                            ("adam:10", Refinement(steps=10))])
def test_refine_option_values(spec, expected):
    assert Refinement.parse(spec) == expected


@pytest.mark.parametrize("spec", ["sga", "sga:", "newton:5", "-3", "sga:x"])
def test_bad_refine_option_values_are_refused_in_one_line(spec):
    with pytest.raises(ValueError, match="refine|method"):
        Refinement.parse(spec)


def test_candidate_names_carry_the_method_and_read_back():
    for refine in (Refinement.of("adam", 25), Refinement.of("sga", 500)):
        name = refine.name("learned-psnr-q3")
        assert split_name(name) == ("learned-psnr-q3", refine)
    assert Refinement.of("sga", 500).name("learned-psnr-q3") == "learned-psnr-q3-sga500"
    assert split_name("learned-psnr-q3") == ("learned-psnr-q3", None)
