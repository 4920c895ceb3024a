"""Encoder-side latent refinement: spend encode time, not decode time, on quality.

The analysis transform ``g_a`` is amortised: one pass predicts a latent that is
good for images on average, not the best latent for *this* image.  Refinement
starts from ``y = g_a(x)`` and runs a few Adam steps on ``y`` alone (network
frozen) against the loss the network was trained on, at the rate point's λ:

    λ · D(x, g_s(ŷ)) + R(ŷ)        (D on the image's own pixels, R in bits per pixel)

with the training forward's relaxations (straight-through rounding for ŷ,
uniform noise for the rate).  The stream format and the decoder do not change:
the refined latent is coded like any other (Campos et al., "Content Adaptive
Optimization for Neural Image Compression", CVPR-W 2019; Yang et al., NeurIPS
2020).  The encoder codes both latents and keeps the refined one only if its
real λ·D + R (true bytes, decoded pixels) is lower, so refinement never makes a
point worse.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from eval.metrics import msssim_rgb, sse

from .ladder import Ladder
from .train import MSSSIM_MIN_CROP, bits_per_pixel, distortion


NAME_TAG = "-refine"  # learned-psnr-q3-refine50: that ladder point, latents refined 50 steps


@dataclass(frozen=True)
class Refinement:
    """How hard the encoder works on each latent: Adam ``steps``, learning rate ``lr`` times ``decay`` per step."""

    steps: int = 0  # 0: off, code g_a(x) as it is
    # Chosen by bench/bench_refine.py (bench/results/refine.md): at 25 steps as good as
    # any constant rate tried, and stable to 50 steps where lr 0.01 alone diverges.
    lr: float = 0.01
    decay: float = 0.93

    def name(self, base: str) -> str:
        """The candidate name of ladder point ``base`` coded with this refinement."""
        return f"{base}{NAME_TAG}{self.steps}" if self.steps > 0 else base


def refinable(ladder: Ladder, size: tuple[int, int]) -> bool:
    """Whether refinement can score this image: MS-SSIM needs 161 px per side (5 scales)."""
    return ladder.metric == "mse" or min(size) >= MSSSIM_MIN_CROP


def split_name(name: str) -> tuple[str, Refinement | None]:
    """``learned-psnr-q3-refine50`` -> (``learned-psnr-q3``, 50 steps); no tag -> (name, None)."""
    base, tag, steps = name.rpartition(NAME_TAG)
    if tag and steps.isdigit() and int(steps) > 0:
        return base, Refinement(steps=int(steps))
    return name, None


def refinement(net: torch.nn.Module, ladder: Ladder, x: Tensor, size: tuple[int, int], rate: float,
               lr: float, decay: float = 1.0) -> Iterator[Tensor]:
    """Adam steps on the latent of the padded image ``x`` (1×3×H×W): yields it after each step.

    ``size`` is the image's own (unpadded) height and width: distortion and rate
    are measured on those pixels only.  The learning rate is multiplied by
    ``decay`` after every step (large early steps, then settling).  The yielded
    latents are detached copies; the network is frozen and back in its previous
    mode once the generator closes.  The rate's uniform noise comes from a fixed
    seed on a forked RNG: the same image refines to the same latent every time,
    and the caller's random state is restored on closing.
    """
    height, width = size
    lmbda = ladder.lambda_at(rate)
    target = x[..., :height, :width]
    with torch.no_grad():
        gains = net.gains(torch.tensor([rate]))
        y = net.analyse(x).requires_grad_(True)
    optimiser = torch.optim.Adam([y], lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=decay)
    frozen = [p for p in net.parameters() if p.requires_grad]
    was_training = net.training
    try:
        net.train()  # the training relaxations: noise for the rate, straight-through ŷ
        for param in frozen:
            param.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            while True:
                out = net.latent_codec(y, *gains)
                x_hat = net.g_s(out["y_hat"])[..., :height, :width]
                rate_bpp = bits_per_pixel(out["likelihoods"], height * width)
                loss = lmbda * distortion(ladder, target, x_hat) + rate_bpp
                optimiser.zero_grad(set_to_none=True)
                loss.sum().backward()
                optimiser.step()
                schedule.step()
                yield y.detach().clone()
    finally:
        net.train(was_training)
        for param in frozen:
            param.requires_grad_(True)


def refine_latent(net: torch.nn.Module, ladder: Ladder, x: Tensor, size: tuple[int, int], rate: float,
                  refine: Refinement) -> Tensor:
    """The latent after ``refine.steps`` refinement steps (``g_a(x)`` itself for 0)."""
    if refine.steps <= 0:
        with torch.no_grad():
            return net.analyse(x)
    with contextlib.closing(refinement(net, ladder, x, size, rate, refine.lr, refine.decay)) as latents:
        return next(itertools.islice(latents, refine.steps - 1, None))


def rd_cost(ladder: Ladder, rate: float, image: np.ndarray, decoded: np.ndarray, n_bytes: int) -> float:
    """The real ``λ·D + R`` of a coded image: D as in training (255²·MSE or 1 − MS-SSIM), R in bits per pixel."""
    pixels = image.shape[0] * image.shape[1]
    if ladder.metric == "mse":
        dist = sse(image, decoded) / (3 * pixels)
    else:
        dist = 1 - msssim_rgb(image, decoded)
    return ladder.lambda_at(rate) * dist + 8 * n_bytes / pixels
