"""CompressAI's checkerboard context convolution, without the anchor pass's dead work.

A checkerboard codes its anchor half first, with no context: CompressAI's
``CheckerboardLatentCodec`` still runs the 5×5 context convolution over an
all-zero latent (then zeroes its output), in the encoder and in the decoder.
That convolution is the largest single layer at latent resolution (M → 2M,
25 taps).  For an all-zero input this layer returns its bias without
computing: what the convolution gives (every product is ±0; a zero bias may
differ in the sign of zero), and CompressAI zeroes the anchor context right
after (``_mask_all``) anyway, so streams and decoded images do not change.
"""

from __future__ import annotations

from compressai.layers import CheckerboardMaskedConv2d
from torch import Tensor


class CheckerboardContext(CheckerboardMaskedConv2d):
    """A ``CheckerboardMaskedConv2d`` (same parameters and state-dict keys) that
    skips the arithmetic outside training when its input is all zeros."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training or x.any():
            return super().forward(x)
        size = [
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, p, d, k, s in zip(x.shape[-2:], self.padding, self.dilation, self.kernel_size, self.stride)
        ]
        bias = self.bias if self.bias is not None else x.new_zeros(self.out_channels)
        return bias.view(1, -1, 1, 1).expand(x.shape[0], -1, *size)
