"""The learned codec: a gain-controlled (variable-rate) VAE with attention,
a hyperprior and a checkerboard context model, built from CompressAI parts.

::

    x ─► g_a (conv+GDN, AttentionBlock) ─► y ─► × y_gain[r] ─► Q ─► checkerboard
                                                                 │   context + GC
          h_a ─► × z_gain[r] ─► Q ─► EB ─► × z_gain_inv[r] ─► h_s ─┘ (params)
    x̂ ◄─ g_s (AttentionBlock, deconv+IGDN) ◄─ × y_gain_inv[r] ◄─ ŷ

One network serves every rate point of a ladder: rate ``r`` selects a row of
learned per-channel gains (Cui et al., CVPR 2021, "Asymmetric Gained Deep Image
Compression"); a fractional ``r`` interpolates two rows geometrically, so any
rate between the trained points is available without retraining.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.latent_codecs import (
    CheckerboardLatentCodec,
    GainHyperLatentCodec,
    GainHyperpriorLatentCodec,
    GaussianConditionalLatentCodec,
)
from compressai.layers import GDN, AttentionBlock, CheckerboardMaskedConv2d, conv3x3
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from compressai.registry import register_model
from torch import Tensor

from .centres import CentredCheckerboardLatentCodec, CentredGaussianLatentCodec
from .conditional import LeanGaussianConditional
from .integer_prior import IntegerPrior, exact_gain, to_float
from .laplacian import LaplacianConditional

# Total down-sampling of g_a (the latent ``y`` is at 1/stride of the image): 16, as in
# cheng2020, or 8, one stage fewer, for high rates, where a 16×16 block's M channels
# cap the quality (``bench/results/latent_ceiling.md``).
STRIDES = (8, 16)
# The layers (indices in g_a and g_s) of the stage that stride 16 adds to stride 8.
STRIDE_16_STAGE = {"g_a": (5, 6), "g_s": (3, 4)}
# The largest stride times h_a's down-sampling (4): inputs are padded to this.
PAD_MULTIPLE = 64


def _analysis(N: int, M: int, stride: int) -> nn.Sequential:
    layers = [conv(3, N), GDN(N), conv(N, N), GDN(N), AttentionBlock(N)]
    if stride == 16:
        layers += [conv(N, N), GDN(N)]
    return nn.Sequential(*layers, conv(N, M), AttentionBlock(M))


class SubPixelDeconv(nn.ConvTranspose2d):
    """CompressAI's ``deconv`` (5×5, stride 2), evaluated as a sub-pixel convolution outside training.

    Output pixel (2i + a, 2j + b) of the transposed convolution only sees inputs
    i − 1 … i + 1, j − 1 … j + 1, through taps ``a + 2 − 2·dy``: the same function is a
    3×3 convolution to 4× the channels, then ``pixel_shuffle(2)``.  For the last
    layer (N → 3) that is about 2× faster on CPU, where a transposed convolution
    to 3 channels vectorises badly (``bench/bench_final_layer.py``).  Parameters
    and state-dict keys are those of the transposed convolution; training uses it.
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


def _synthesis(N: int, M: int, stride: int) -> nn.Sequential:
    layers = [AttentionBlock(M), deconv(M, N), GDN(N, inverse=True)]
    if stride == 16:
        layers += [deconv(N, N), GDN(N, inverse=True)]
    return nn.Sequential(*layers, AttentionBlock(N), deconv(N, N), GDN(N, inverse=True), SubPixelDeconv(N, 3))


class PostFilter(nn.Module):
    """Optional enhancement after ``g_s``: ``x + f(x)``, a small residual CNN.

    The last layer starts at zero, so a network gains the filter as an exact
    identity and fine-tuning decides what it learns.
    """

    def __init__(self, channels: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(3, channels), nn.LeakyReLU(inplace=True),
            conv3x3(channels, channels), nn.LeakyReLU(inplace=True),
            conv3x3(channels, 3),
        )  # fmt: skip
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _hyper_analysis(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(
        conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
        conv(N, N), nn.LeakyReLU(inplace=True),
        conv(N, N),
    )  # fmt: skip


def _hyper_synthesis(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(
        deconv(N, M), nn.LeakyReLU(inplace=True),
        deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
        conv(M * 3 // 2, M * 2, stride=1, kernel_size=3),
    )  # fmt: skip


def _entropy_parameters(M: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(M * 4, M * 10 // 3, 1), nn.LeakyReLU(inplace=True),
        nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.LeakyReLU(inplace=True),
        nn.Conv2d(M * 8 // 3, M * 2, 1),
    )  # fmt: skip


@register_model("gained-attn-checkerboard")
class GainedAttentionCheckerboard(CompressionModel):
    """Variable-rate attention VAE with hyperprior + checkerboard context.

    Args:
        N: channels of the transforms and of the hyper-latent.
        M: channels of the latent ``y``.
        n_rates: number of trained rate points (rows of gains).
        postfilter: append a :class:`PostFilter` to ``g_s`` (ladder flag
            ``postfilter = true``; measured in ``bench/results/options.md``).
        centres: learnable reconstruction centres for the quantised latent
            (:mod:`models.centres`; ladder flag ``centres = true``, measured there too).
        laplacian: a conditional Laplacian instead of a Gaussian for ``y``
            (:mod:`models.laplacian`; ladder flag ``laplacian = true``, measured there too).
        stride: down-sampling of ``g_a`` (:data:`STRIDES`; ladder ``stride = 8``).
    """

    def __init__(
        self,
        N: int = 96,
        M: int = 128,
        n_rates: int = 5,
        postfilter: bool = False,
        centres: bool = False,
        laplacian: bool = False,
        stride: int = 16,
    ):
        super().__init__()
        if stride not in STRIDES:
            raise ValueError(f"stride must be one of {STRIDES}, got {stride}")
        self.N, self.M, self.n_rates, self.stride = N, M, n_rates, stride
        self.g_a = _analysis(N, M, stride)
        self.g_s = _synthesis(N, M, stride)
        if postfilter:
            self.g_s.append(PostFilter())
        conditional_model = LaplacianConditional if laplacian else LeanGaussianConditional
        conditional = {"gaussian_conditional": conditional_model(None)}
        if centres:
            checkerboard, gaussian = CentredCheckerboardLatentCodec, CentredGaussianLatentCodec(M, **conditional)
        else:
            checkerboard = CheckerboardLatentCodec
            gaussian = GaussianConditionalLatentCodec(quantizer="ste", **conditional)
        self.latent_codec = GainHyperpriorLatentCodec(
            latent_codec={
                "y": checkerboard(
                    latent_codec={"y": gaussian},
                    entropy_parameters=_entropy_parameters(M),
                    context_prediction=CheckerboardMaskedConv2d(
                        M, 2 * M, kernel_size=5, stride=1, padding=2
                    ),
                ),
                "hyper": GainHyperLatentCodec(
                    entropy_bottleneck=EntropyBottleneck(N),
                    h_a=_hyper_analysis(N, M),
                    h_s=_hyper_synthesis(N, M),
                ),
            }
        )
        # Higher rate index = finer quantisation = larger gain.
        init = torch.linspace(-1.0, 1.0, n_rates).unsqueeze(1)
        self.y_gain = nn.Parameter(torch.exp(init).repeat(1, M))
        self.y_gain_inv = nn.Parameter(torch.exp(-init).repeat(1, M))
        self.z_gain = nn.Parameter(torch.ones(n_rates, N))
        self.z_gain_inv = nn.Parameter(torch.ones(n_rates, N))

    def gains(self, rate: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Gains for each item's (possibly fractional) rate, shaped (B, C, 1, 1)."""
        rate = rate.to(self.y_gain.dtype).clamp(0, self.n_rates - 1)
        lo = rate.floor().long().clamp(max=self.n_rates - 2)
        t = (rate - lo).unsqueeze(1)

        def pick(table: Tensor) -> Tensor:
            table = table.abs()  # gains must stay positive
            mixed = table[lo] ** (1 - t) * table[lo + 1] ** t
            return mixed[:, :, None, None]

        return pick(self.y_gain), pick(self.z_gain), pick(self.y_gain_inv), pick(self.z_gain_inv)

    def forward(self, x: Tensor, rate: Tensor, bf16: bool = False) -> dict:
        """Training pass: ``rate`` holds one rate per batch item.

        ``bf16`` runs only the transforms under bfloat16 autocast; the entropy
        model (likelihoods, hence the rate term) always stays in float32.
        """
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            y = self.g_a(x)
        y_out = self.latent_codec(y.float(), *self.gains(rate))
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            x_hat = self.g_s(y_out["y_hat"])
        return {"x_hat": x_hat.float(), "likelihoods": y_out["likelihoods"]}

    def ready_for_coding(self) -> "GainedAttentionCheckerboard":
        """Evaluation mode, transforms in channels-last layout (about 1.4x faster on CPU).

        Only ``g_a`` and ``g_s`` change layout: the entropy path is computed in integers
        (:mod:`models.integer_prior`)."""
        self.eval()
        self.g_a.to(memory_format=torch.channels_last)
        self.g_s.to(memory_format=torch.channels_last)
        return self

    def freeze_integer_prior(self) -> None:
        """Build the integer probability path once, for weights that will not change again
        (a loaded ladder); otherwise each coding call builds it from the current weights."""
        self._integer_prior = IntegerPrior(self)

    def integer_prior(self) -> IntegerPrior:
        return getattr(self, "_integer_prior", None) or IntegerPrior(self)

    def coding_gains(self, rate: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(y_gain, z_gain, y_gain_inv, z_gain_inv) at ``rate`` by the exact definition
        (:func:`models.integer_prior.exact_gain`), float64 of shape (C,)."""
        return tuple(exact_gain(t, rate) for t in (self.y_gain, self.z_gain, self.y_gain_inv, self.z_gain_inv))

    def analyse(self, x: Tensor) -> Tensor:
        """The latent ``y = g_a(x)`` (contiguous, as the entropy path expects)."""
        return self.g_a(x.contiguous(memory_format=torch.channels_last)).contiguous()

    def compress(self, x: Tensor, rate: float, y: Tensor | None = None) -> dict:
        """Code ``x`` at ``rate``; ``y`` codes that latent instead of ``g_a(x)`` (see ``models.refine``).

        Streams: the checkerboard's anchor and non-anchor halves of ``y``, then ``z``.
        """
        y = self.analyse(x) if y is None else y
        y_gain, z_gain, y_gain_inv, z_gain_inv = self.coding_gains(rate)
        hyper, prior = self.latent_codec["hyper"], self.integer_prior()
        z = hyper.h_a(y) * z_gain.float().view(1, -1, 1, 1)
        z_strings = hyper.entropy_bottleneck.compress(z)
        z_hat = hyper.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        side = prior.hyper(z_hat, z_gain_inv)
        y_strings, y_hat = prior.code_y(y.double() * y_gain.view(1, -1, 1, 1), side)
        return {
            "strings": [[y_strings[0]], [y_strings[1]], z_strings],
            "shape": {"y": tuple(y.shape[1:]), "hyper": tuple(z.shape[-2:])},
            "y_hat": self._dequantised(y_hat, y_gain_inv),
        }

    def decompress(self, strings: list, shape: dict, rate: float) -> Tensor:
        return self.synthesise(self.decode_latent(strings, shape, rate), rate)

    def decode_latent(self, strings: list, shape: dict, rate: float) -> Tensor:
        """The exact integer latent ŷ (int64, at 2**-FRACTION_BITS) of coded strings: the same on every machine."""
        z_gain_inv = self.coding_gains(rate)[3]
        hyper, prior = self.latent_codec["hyper"], self.integer_prior()
        z_hat = hyper.entropy_bottleneck.decompress(strings[2], shape["hyper"])
        return prior.decode_y([strings[0][0], strings[1][0]], prior.hyper(z_hat, z_gain_inv))

    def synthesise(self, y_hat: Tensor, rate: float) -> Tensor:
        """The image (1×3×H×W in [0, 1]) of an integer latent, in floating point."""
        y = self._dequantised(y_hat, self.coding_gains(rate)[2])
        return self.g_s(y.contiguous(memory_format=torch.channels_last)).clamp_(0, 1).contiguous()

    @staticmethod
    def _dequantised(y_hat: Tensor, y_gain_inv: Tensor) -> Tensor:
        """The synthesis input: exact integer ŷ times the rate's inverse gain (float32)."""
        return to_float(y_hat) * y_gain_inv.float().view(1, -1, 1, 1)
