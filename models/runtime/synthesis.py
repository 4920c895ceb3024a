"""The synthesis transform ``g_s`` for decoding, in plain torch (no CompressAI).

The same layers, parameter names and operations, in the same order, as the training
network's ``g_s`` (CompressAI's ``AttentionBlock``, ``deconv`` and inverse ``GDN``,
this project's sub-pixel last layer and optional post-filter), so a state dict loads
unchanged and the pixels are those of the training network's ``g_s`` bit for bit
(a test compares them).  The GDN's reparametrised β and γ are computed once at load
with CompressAI's operations, not at every call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv(in_ch: int, out_ch: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_ch, out_ch, 5, stride=2, output_padding=1, padding=2)


class _Reparametrised(nn.Module):
    """CompressAI's ``NonNegativeParametrizer`` state: ``max(x, bound)**2 - pedestal``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("pedestal", torch.zeros(1))
        self.lower_bound = nn.Module()
        self.lower_bound.register_buffer("bound", torch.zeros(1))

    def __call__(self, x: Tensor) -> Tensor:
        return torch.max(x, self.lower_bound.bound) ** 2 - self.pedestal


class InverseGDN(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(channels))
        self.gamma = nn.Parameter(torch.zeros(channels, channels))
        self.beta_reparam, self.gamma_reparam = _Reparametrised(), _Reparametrised()

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        beta, gamma = self.beta_reparam(self.beta), self.gamma_reparam(self.gamma).reshape(channels, channels, 1, 1)
        return x * torch.sqrt(F.conv2d(x**2, gamma, beta))


class ResidualUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv = nn.Sequential(conv(channels, half, 1), nn.ReLU(inplace=True), conv(half, half, 3),
                                  nn.ReLU(inplace=True), conv(half, channels, 1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        out += x
        return self.relu(out)


class AttentionBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv_a = nn.Sequential(*(ResidualUnit(channels) for _ in range(3)))
        self.conv_b = nn.Sequential(*(ResidualUnit(channels) for _ in range(3)), conv(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(x))
        out += x
        return out


class SubPixelDeconv(nn.ConvTranspose2d):
    """A 5×5 stride-2 transposed convolution evaluated as a sub-pixel convolution.

    Output pixel (2i + a, 2j + b) of the transposed convolution only sees inputs
    i − 1 … i + 1, j − 1 … j + 1, through taps ``a + 2 − 2·dy``: the same function is a
    3×3 convolution to 4× the channels, then ``pixel_shuffle(2)``.  For the last
    layer (N → 3) that is about 2× faster on CPU, where a transposed convolution to 3
    channels vectorises badly.  Parameters and state-dict keys are those of the
    transposed convolution; training runs it as one.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=5, stride=2, output_padding=1, padding=2)
        taps = torch.tensor([[4, 2, 0], [5, 3, 1]])  # [a or b, dy + 1]: tap a + 2 − 2·dy (5: none)
        self.register_buffer("taps", taps, persistent=False)

    def subpixel_weight(self) -> tuple[Tensor, Tensor]:
        """The 3×3 kernel (4·C_out × C_in) and bias of the equivalent sub-pixel convolution."""
        w = F.pad(self.weight, (0, 1, 0, 1))  # C_in × C_out × 6 × 6: tap 5 is zero
        rows, cols = self.taps[:, None, :, None], self.taps[None, :, None, :]
        kernel = w[:, :, rows, cols]  # C_in × C_out × a × b × dy × dx
        kernel = kernel.permute(1, 2, 3, 0, 4, 5).reshape(-1, self.in_channels, 3, 3)
        return kernel.contiguous(memory_format=torch.channels_last), self.bias.repeat_interleave(4)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if self.training or output_size is not None:
            return super().forward(x, output_size)
        kernel, bias = self.subpixel_weight()
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=1), 2)


class PostFilter(nn.Module):
    """Optional enhancement after ``g_s``: ``x + f(x)``, a small residual CNN.

    The last layer starts at zero, so a network gains the filter as an exact
    identity and fine-tuning decides what it learns.
    """

    def __init__(self, channels: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            conv(3, channels, 3), nn.LeakyReLU(inplace=True),
            conv(channels, channels, 3), nn.LeakyReLU(inplace=True),
            conv(channels, 3, 3),
        )  # fmt: skip
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def synthesis(N: int, M: int, stride: int, postfilter: bool) -> nn.Sequential:
    """``g_s`` for decoding: the layer indices (state-dict keys) of the training network's."""
    layers = [AttentionBlock(M), deconv(M, N), InverseGDN(N)]
    if stride == 16:
        layers += [deconv(N, N), InverseGDN(N)]
    layers += [AttentionBlock(N), deconv(N, N), InverseGDN(N), SubPixelDeconv(N, 3)]
    if postfilter:
        layers.append(PostFilter())
    return nn.Sequential(*layers)
