"""models.refine: encoder-side latent refinement, with the ``tiny`` ladder (``conftest``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eval.images import load_rgb8
from models.codec import pad_to_multiple, coded_rate, decode_stream, encode_image, encode_latent, to_tensor
from models.ladder import LadderEntry
from models.refine import Refinement, rd_cost, refine_latent

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"
REFINE = Refinement(steps=15, lr=0.05)


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


def test_refined_latent_codes_cheaper_and_the_plain_decoder_reads_it(tiny, image):
    entry = LadderEntry(tiny.ladder, 2, 2.0)
    x = pad_to_multiple(to_tensor(image))
    plain_y = refine_latent(tiny.net, tiny.ladder, x, image.shape[:2], coded_rate(entry), Refinement(steps=0))
    refined_y = refine_latent(tiny.net, tiny.ladder, x, image.shape[:2], coded_rate(entry), REFINE)
    assert not torch.equal(plain_y, refined_y)
    plain = encode_latent(entry, image, None, tiny.weights)
    assert encode_latent(entry, image, plain_y, tiny.weights) == plain  # 0 steps = g_a(x) exactly
    refined = encode_latent(entry, image, refined_y, tiny.weights)
    assert decode_stream(refined, tiny.weights).shape == image.shape
    # A 30-step network's g_a is far from each image's best latent: refinement lowers the real λ·D + R.
    assert cost(entry, image, refined, tiny.weights) < 0.97 * cost(entry, image, plain, tiny.weights)


def test_refinement_is_deterministic_and_leaves_network_and_rng_as_they_were(tiny, image):
    net = tiny.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.requires_grad for p in net.parameters()]
    torch.manual_seed(123)
    x = pad_to_multiple(to_tensor(image))
    first = refine_latent(net, tiny.ladder, x, image.shape[:2], 1.0, REFINE)
    after_first = torch.rand(1)  # the caller's random stream continues as if nothing ran
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after_first)
    assert torch.equal(refine_latent(net, tiny.ladder, x, image.shape[:2], 1.0, REFINE), first)
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
