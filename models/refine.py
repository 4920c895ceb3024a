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

Two methods:

- ``adam`` (``-refineN``): N Adam steps on ``y``, rounding relaxed as in training;
- ``sga`` (``-sgaN``): stochastic Gumbel annealing (Yang, Bamler and Mandt, NeurIPS
  2020, "Improving inference for neural image compression") on ``y`` *and* the
  hyper-latent ``z``: each latent element is rounded down or up at random, with odds
  set by its distance to the two integers and a temperature annealed towards 0, so
  that the optimisation ends on the integer grid the coder uses.  The schedule is
  the authors' image setting scaled to N steps (``SgaSchedule``).
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


# Candidate name tag of each method: learned-psnr-q3-refine50 is that ladder point, latents
# refined 50 Adam steps; learned-psnr-q3-sga500, 500 steps of stochastic Gumbel annealing.
NAME_TAGS = {"adam": "-refine", "sga": "-sga"}


@dataclass(frozen=True)
class Refinement:
    """How hard the encoder works on each latent: ``steps`` of ``method``, Adam at learning rate
    ``lr`` times ``decay`` per step."""

    steps: int = 0  # 0: off, code g_a(x) as it is
    method: str = "adam"
    # adam: chosen by bench/bench_refine.py (bench/results/refine.md): at 25 steps as good as
    # any constant rate tried, and stable to 50 steps where lr 0.01 alone diverges.
    # sga: the authors' setting (constant 0.005).
    lr: float = 0.01
    decay: float = 0.93

    def __post_init__(self) -> None:
        if self.method not in NAME_TAGS:
            raise ValueError(f"unknown refinement method {self.method!r}; choose one of {', '.join(NAME_TAGS)}")
        if self.steps < 0:
            raise ValueError(f"refinement steps must be >= 0, got {self.steps}")

    @classmethod
    def parse(cls, text: str) -> "Refinement":
        """``25`` (Adam steps), ``sga:500`` (annealing steps) or ``0`` (off), as ``--refine`` takes it."""
        method, _, steps = text.strip().rpartition(":")
        method = method or "adam"
        if not steps.isdigit():
            raise ValueError(f"--refine {text!r}: expected STEPS or METHOD:STEPS (e.g. 25, sga:500)")
        return cls.of(method, int(steps))

    @classmethod
    def of(cls, method: str, steps: int) -> "Refinement":
        """``steps`` of ``method`` with that method's default learning-rate schedule."""
        return cls(steps=steps, method=method, **({"lr": 0.005, "decay": 1.0} if method == "sga" else {}))

    @property
    def tag(self) -> str:
        """``refine25`` / ``sga500``: names the refinement in candidate and entry names."""
        return f"{NAME_TAGS[self.method][1:]}{self.steps}"

    def name(self, base: str) -> str:
        """The candidate name of ladder point ``base`` coded with this refinement."""
        return f"{base}-{self.tag}" if self.steps > 0 else base


def refinable(ladder: Ladder, size: tuple[int, int]) -> bool:
    """Whether refinement can score this image: MS-SSIM needs 161 px per side (5 scales)."""
    return ladder.metric == "mse" or min(size) >= MSSSIM_MIN_CROP


def split_name(name: str) -> tuple[str, Refinement | None]:
    """``learned-psnr-q3-refine50`` -> (``learned-psnr-q3``, 50 Adam steps), ``...-sga500`` likewise;
    no tag -> (name, None)."""
    for method, tag in NAME_TAGS.items():
        base, found, steps = name.rpartition(tag)
        if found and steps.isdigit() and int(steps) > 0:
            return base, Refinement.of(method, int(steps))
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
                  refine: Refinement) -> tuple[Tensor, Tensor | None]:
    """The latent to code after ``refine.steps`` steps of its method: ``(y, z)``, where ``z``
    is None when the hyper-latent is left to follow ``y`` (``adam``, or 0 steps: ``g_a(x)``)."""
    if refine.steps <= 0:
        with torch.no_grad():
            return net.analyse(x), None
    if refine.method == "sga":
        from .sga import annealing

        steps = annealing(net, ladder, x, size, rate, refine.steps, refine.lr)
        with contextlib.closing(steps) as latents:
            return next(itertools.islice(latents, refine.steps - 1, None))
    with contextlib.closing(refinement(net, ladder, x, size, rate, refine.lr, refine.decay)) as latents:
        return next(itertools.islice(latents, refine.steps - 1, None)), None


def rd_cost(ladder: Ladder, rate: float, image: np.ndarray, decoded: np.ndarray, n_bytes: int) -> float:
    """The real ``λ·D + R`` of a coded image: D as in training (255²·MSE or 1 − MS-SSIM), R in bits per pixel."""
    pixels = image.shape[0] * image.shape[1]
    if ladder.metric == "mse":
        dist = sse(image, decoded) / (3 * pixels)
    else:
        dist = 1 - msssim_rgb(image, decoded)
    return ladder.lambda_at(rate) * dist + 8 * n_bytes / pixels
