"""Stochastic Gumbel annealing (SGA): per-image latents that end on the coder's integer grid.

Yang, Bamler and Mandt, "Improving inference for neural image compression",
NeurIPS 2020.  Plain refinement (``models.refine``, method ``adam``) optimises the
latent against the training relaxation (uniform noise for the rate, straight-through
rounding), whose gap to real rounding grows as the latent moves.  SGA instead rounds
each element down or up at random, with log-odds ``-atanh(distance) / τ`` to each of
the two integers, and relaxes that choice with the Gumbel-softmax trick at the same
temperature ``τ``.  Annealing ``τ`` towards 0 makes the rounding hard and
deterministic, so the objective approaches the real one of the latent that is coded.

Both the latent ``y`` and the hyper-latent ``z`` are optimised, each in the domain the
coder quantises (after its gain, around its mean or median), through the network's own
parts: the hyper-synthesis, the checkerboard's two passes and the conditional's
likelihood.  The network stays frozen; only the encoder changes, never the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .ladder import Ladder
from .train import bits_per_pixel, distortion

EPSILON = 1e-5  # keeps atanh finite at distance 0 and 1


@dataclass(frozen=True)
class SgaSchedule:
    """τ(t) = ``start`` for the first ``hold`` share of the steps, then exponential decay to
    ``start · exp(-decay)`` at the last step: the authors' image setting (τ 0.5, held 700
    of 2,000 steps, then ``exp(-0.001 t)``) scaled to any number of steps."""

    steps: int
    start: float = 0.5
    hold: float = 0.35
    decay: float = 1.3

    def tau(self, step: int) -> float:
        held = round(self.hold * self.steps)
        progress = max(0, step - held) / max(1, self.steps - held)
        return self.start * math.exp(-self.decay * progress)


def sga_round(values: Tensor, tau: float) -> Tensor:
    """One relaxed sample of rounding ``values`` down or up (to the integer grid)."""
    down = values.floor()
    distance = values - down
    logits = torch.stack([
        -torch.atanh(distance.clamp(EPSILON, 1 - EPSILON)),
        -torch.atanh((1 - distance).clamp(EPSILON, 1 - EPSILON)),
    ], dim=-1) / tau
    up = F.gumbel_softmax(logits, tau=tau, hard=False)[..., 1]
    return down + up


def _hyper_likelihood(bottleneck, z: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """(ẑ, its likelihoods) for the gained hyper-latent ``z``, rounded around the bottleneck's
    medians as its ``compress`` does; the layout dance is ``EntropyBottleneck.forward``'s."""
    channels_first = z.permute(1, 0, 2, 3)
    values = channels_first.reshape(z.shape[1], 1, -1)
    medians = bottleneck._get_medians()
    z_hat = sga_round(values - medians, tau) + medians
    likelihood, _, _ = bottleneck._likelihood(z_hat)
    if bottleneck.use_likelihood_bound:
        likelihood = bottleneck.likelihood_lower_bound(likelihood)

    def back(v: Tensor) -> Tensor:
        return v.reshape(channels_first.shape).permute(1, 0, 2, 3)

    return back(z_hat), back(likelihood)


def _latent_likelihood(checkerboard, y: Tensor, side: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """(ŷ, its likelihoods) for the gained latent ``y``: anchors rounded around the means the
    side information predicts, then the non-anchors around those their context adds, as the
    checkerboard codes them."""
    conditional = checkerboard.latent_codec["y"]
    params = y.new_zeros((y.shape[0], 2 * y.shape[1], *y.shape[2:]))
    y_hat = torch.zeros_like(y)
    for step in ("anchor", "non_anchor"):
        context = checkerboard._y_ctx_zero(y) if step == "anchor" else checkerboard.context_prediction(y_hat)
        step_params = checkerboard.entropy_parameters(checkerboard.merge(context, side))
        checkerboard._copy(params, step_params, step)
        _, means = conditional._chunk(checkerboard._keep_only(step_params, step))
        y_hat = y_hat + checkerboard._keep_only(sga_round(y - means, tau) + means, step)
    scales, means = conditional._chunk(conditional.entropy_parameters(params))
    gaussian = conditional.gaussian_conditional
    likelihood = gaussian._likelihood(y_hat, scales, means)
    if gaussian.use_likelihood_bound:
        likelihood = gaussian.likelihood_lower_bound(likelihood)
    return y_hat, likelihood


def annealing(net: torch.nn.Module, ladder: Ladder, x: Tensor, size: tuple[int, int], rate: float,
              steps: int, lr: float) -> Iterator[tuple[Tensor, Tensor]]:
    """Adam on (y, z) of the padded image ``x`` under SGA for ``steps`` steps: yields the
    latent to code (``y`` before its gain, ``z`` after it) after each step.

    As ``models.refine.refinement``: distortion and rate on the image's own ``size``,
    Gumbel noise from a fixed seed on a forked RNG (the same image anneals to the same
    latents every time), the network frozen and back as it was once the generator closes.
    """
    if dict(ladder.arch).get("centres"):
        raise ValueError(f"ladder {ladder.name}: SGA does not model learned reconstruction centres")
    height, width = size
    lmbda = ladder.lambda_at(rate)
    target = x[..., :height, :width]
    hyper, checkerboard = net.latent_codec["hyper"], net.latent_codec["y"]
    schedule = SgaSchedule(steps)
    with torch.no_grad():
        y_gain, z_gain, y_gain_inv, z_gain_inv = net.gains(torch.tensor([rate]))
        y0 = net.analyse(x)
        y = (y0 * y_gain).requires_grad_(True)
        z = (hyper.h_a(y0) * z_gain).requires_grad_(True)
    optimiser = torch.optim.Adam([y, z], lr=lr)
    frozen = [p for p in net.parameters() if p.requires_grad]
    was_training = net.training
    try:
        net.eval()
        for param in frozen:
            param.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for step in range(steps):
                tau = schedule.tau(step)
                z_hat, z_likelihood = _hyper_likelihood(hyper.entropy_bottleneck, z, tau)
                side = hyper.h_s(z_hat * z_gain_inv)
                y_hat, y_likelihood = _latent_likelihood(checkerboard, y, side, tau)
                x_hat = net.g_s(y_hat * y_gain_inv)[..., :height, :width]
                rate_bpp = bits_per_pixel({"y": y_likelihood, "z": z_likelihood}, height * width)
                loss = lmbda * distortion(ladder, target, x_hat) + rate_bpp
                optimiser.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimiser.step()
                yield (y / y_gain).detach().clone(), z.detach().clone()
    finally:
        net.train(was_training)
        for param in frozen:
            param.requires_grad_(True)
