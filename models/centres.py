"""Learnable reconstruction centres for the quantised latent (ladder flag ``centres = true``).

The quantiser codes ``q = round(y − μ)`` around the context model's mean μ.
Plain dequantisation puts every nonzero bin's value at its middle, ``μ + q``;
for peaked (Laplacian-like) latents the conditional mean of a bin lies nearer
μ.  Here each channel learns a shift δ toward μ for nonzero bins:

    ŷ = μ + q − sign(q) · δ          (δ = 0 at the start: identical to plain)

The bins are unchanged: the anchors' bits are the plain codec's; the
non-anchors are coded with a context computed from the shifted anchors
(coding applies δ in integers: ``models.runtime.integer_prior``).  Training uses the straight-through rounding of the
checkerboard's two-pass forward (CompressAI's method, with this reconstruction
in place of ``quantize_ste(y − μ) + μ``), so the context model sees during
training exactly the anchors it sees when coding.
"""

from __future__ import annotations

from typing import Any

import torch
from compressai.latent_codecs import CheckerboardLatentCodec, GaussianConditionalLatentCodec
from compressai.ops import quantize_ste
from torch import Tensor, nn

from .runtime.integer_prior import CENTRE_SHIFT_SCALE


class CentredGaussianLatentCodec(GaussianConditionalLatentCodec):
    """Gaussian conditional whose dequantised values use learnable per-channel centres."""

    def __init__(self, channels: int, **kwargs: Any):
        super().__init__(quantizer="ste", **kwargs)
        self.centre_shift = nn.Parameter(torch.zeros(1, channels, 1, 1))

    @property
    def delta(self) -> Tensor:
        """The learned shift toward μ, in quantisation bins, per channel."""
        return CENTRE_SHIFT_SCALE * self.centre_shift

    def reconstruct(self, y: Tensor, means: Tensor) -> Tensor:
        """Training: straight-through rounding around ``means``, then the learned shift."""
        return self._shifted(quantize_ste(y - means), means)

    def _shifted(self, q: Tensor, means: Tensor) -> Tensor:
        return means + q - torch.sign(q.detach()) * self.delta


class CentredCheckerboardLatentCodec(CheckerboardLatentCodec):
    """Checkerboard context model over a :class:`CentredGaussianLatentCodec` (two-pass training)."""

    def _forward_twopass(self, y: Tensor, side_params: Tensor) -> dict[str, Any]:
        # CompressAI's two-pass forward, with the centred reconstruction for ŷ.
        B, C, H, W = y.shape
        params = y.new_zeros((B, C * 2, H, W))
        y_hat = torch.zeros_like(y)
        for step in ("anchor", "non_anchor"):
            y_ctx = self._y_ctx_zero(y) if step == "anchor" else self.context_prediction(y_hat)
            params_i = self.entropy_parameters(self.merge(y_ctx, side_params))
            self._copy(params, params_i, step)
            params_i = self._keep_only(params_i, step)
            _, means_i = self.latent_codec["y"]._chunk(params_i)
            y_i = self._keep_only(y, step)
            y_hat = y_hat + self._keep_only(self.latent_codec["y"].reconstruct(y_i, means_i), step)
        y_out = self.latent_codec["y"](y, params)
        return {"likelihoods": {"y": y_out["likelihoods"]["y"]}, "y_hat": y_hat}
