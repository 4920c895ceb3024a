"""models.sga: stochastic Gumbel annealing, with the ``tiny`` ladder (``conftest``)."""

from __future__ import annotations

from pathlib import Path

import math

import pytest
import torch

from eval.images import load_rgb8
from models.codec import coded_rate, pad_to_multiple, to_tensor
from models.ladder import LadderEntry
from models.sga import SgaSchedule, _hyper_likelihood, _latent_likelihood, sga_round

torch.set_num_threads(1)
KODAK = Path(__file__).resolve().parents[1] / "data" / "kodak"


def test_rounding_stays_between_the_two_integers_and_hardens_as_it_cools():
    torch.manual_seed(0)
    values = torch.rand(20_000) * 8 - 4
    for tau in (0.5, 0.05, 0.001):
        rounded = sga_round(values, tau)
        assert (rounded >= values.floor()).all() and (rounded <= values.floor() + 1).all()
    # Hot: often between the integers; cold: on them, and mostly the nearest one.
    hot, cold = sga_round(values, 0.5), sga_round(values, 0.001)
    assert (hot - hot.round()).abs().mean() > 0.05
    assert ((cold - cold.round()).abs() < 1e-3).float().mean() > 0.999
    nearest = (cold.round() == values.round()).float().mean()
    assert 0.9 < nearest < 1.0  # random: far from the middle almost always nearest, near it a coin toss


def test_rounding_passes_gradients_to_the_values():
    values = torch.tensor([0.2, 0.5, 1.7], requires_grad=True)
    sga_round(values, 0.5).sum().backward()
    assert values.grad is not None and (values.grad != 0).all()


def test_schedule_holds_then_cools_to_the_authors_end_temperature():
    schedule = SgaSchedule(2000)
    assert schedule.tau(0) == schedule.tau(700) == 0.5
    assert schedule.tau(1350) < 0.5
    assert schedule.tau(2000) == pytest.approx(0.5 * math.exp(-1.3))  # 0.5·exp(-0.001·1300), as published
    short = SgaSchedule(100)
    assert short.tau(35) == 0.5 and short.tau(100) == pytest.approx(schedule.tau(2000))


def test_cold_relaxation_is_the_coded_latent_and_its_rate(tiny):
    """At a temperature near 0 the relaxed ŷ, ẑ are what the coder codes, and their
    likelihoods price the real stream: the SGA objective is the real one at the end."""
    image = load_rgb8(KODAK / "kodim23.png")[100:228, 200:392]
    entry = LadderEntry(tiny.ladder, 2, 2.0)
    rate = coded_rate(entry)
    net = tiny.net
    x = pad_to_multiple(to_tensor(image))
    with torch.no_grad():
        y_gain, z_gain, y_gain_inv, z_gain_inv = net.gains(torch.tensor([rate]))
        y = net.analyse(x)
        hyper = net.latent_codec["hyper"]
        z_hat, z_likelihood = _hyper_likelihood(hyper.entropy_bottleneck, hyper.h_a(y) * z_gain, 1e-6)
        y_hat, y_likelihood = _latent_likelihood(net.latent_codec["y"], y * y_gain,
                                                 hyper.h_s(z_hat * z_gain_inv), 1e-6)
        coded = net.compress(x, rate)
    coded_y_hat = coded["y_hat"] / y_gain_inv  # the coder's ŷ, back in the domain it was rounded in
    same_integer = (y_hat - coded_y_hat).abs() < 0.5  # the coder's means are fixed-point: equal up to 2**-10
    assert same_integer.float().mean() > 0.99  # ... so a few elements near a half round the other way
    estimated_bits = -(torch.log2(y_likelihood).sum() + torch.log2(z_likelihood).sum()).item()
    stream_bits = 8 * sum(len(s[0]) for s in coded["strings"])
    assert estimated_bits == pytest.approx(stream_bits, rel=0.1)
