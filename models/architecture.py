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

import itertools

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck
from compressai.latent_codecs import (
    CheckerboardLatentCodec,
    GainHyperLatentCodec,
    GainHyperpriorLatentCodec,
    GaussianConditionalLatentCodec,
)
from compressai.layers import GDN, AttentionBlock, CheckerboardMaskedConv2d
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from compressai.registry import register_model
from torch import Tensor

from .centres import CentredCheckerboardLatentCodec, CentredGaussianLatentCodec
from .conditional import LeanGaussianConditional
from .laplacian import LaplacianConditional
from .runtime.decoder import Decoder, NetworkSpec, synthesise
from .runtime.integer_prior import CoderTables, IntegerPrior, exact_gain, to_float
from .runtime.synthesis import PostFilter, SubPixelDeconv

# Total down-sampling of g_a (the latent ``y`` is at 1/stride of the image): 16, as in
# cheng2020, or 8, one stage fewer, for high rates, where a 16×16 block's M channels
# cap the quality (docs/codec.md, Architecture).
STRIDES = (8, 16)
# The layers (indices in g_a and g_s) of the stage that stride 16 adds to stride 8.
STRIDE_16_STAGE = {"g_a": (5, 6), "g_s": (3, 4)}


def _analysis(N: int, M: int, stride: int) -> nn.Sequential:
    layers = [conv(3, N), GDN(N), conv(N, N), GDN(N), AttentionBlock(N)]
    if stride == 16:
        layers += [conv(N, N), GDN(N)]
    return nn.Sequential(*layers, conv(N, M), AttentionBlock(M))


def _synthesis(N: int, M: int, stride: int) -> nn.Sequential:
    layers = [AttentionBlock(M), deconv(M, N), GDN(N, inverse=True)]
    if stride == 16:
        layers += [deconv(N, N), GDN(N, inverse=True)]
    return nn.Sequential(*layers, AttentionBlock(N), deconv(N, N), GDN(N, inverse=True), SubPixelDeconv(N, 3))


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
        (:mod:`models.runtime.integer_prior`)."""
        self.eval()
        self.g_a.to(memory_format=torch.channels_last)
        self.g_s.to(memory_format=torch.channels_last)
        return self

    def integer_prior(self) -> IntegerPrior:
        """The exact probability path of the current weights (:mod:`models.runtime.integer_prior`)."""
        return self._coding_parts()[0]

    def decoder(self) -> Decoder:
        """The decoding runtime (:mod:`models.runtime`) for the current weights: what a packaged decoder runs."""
        return self._coding_parts()[1]

    def _coding_parts(self) -> tuple[IntegerPrior, Decoder]:
        """Built once per version of the weights: a copy (new tensors) or an in-place change
        (a tensor's version counter) builds them again, so they never code with stale weights."""
        key = tuple((id(t), t._version) for t in itertools.chain(self.parameters(), self.buffers()))
        cached = self.__dict__.get("_coding_cache")
        if cached is None or cached[0] != key:
            cached = (key, IntegerPrior(self.state_dict()), self._decoder())
            self.__dict__["_coding_cache"] = cached
        return cached[1], cached[2]

    def _decoder(self) -> Decoder:
        postfilter = isinstance(self.g_s[-1], PostFilter)
        return Decoder(NetworkSpec(0, "", self.N, self.M, self.stride, postfilter), self.state_dict())

    def coding_gains(self, rate: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(y_gain, z_gain, y_gain_inv, z_gain_inv) at ``rate`` by the exact definition
        (:func:`models.runtime.integer_prior.exact_gain`), float64 of shape (C,)."""
        return tuple(exact_gain(t, rate) for t in (self.y_gain, self.z_gain, self.y_gain_inv, self.z_gain_inv))

    def analyse(self, x: Tensor) -> Tensor:
        """The latent ``y = g_a(x)`` (contiguous, as the entropy path expects)."""
        return self.g_a(x.contiguous(memory_format=torch.channels_last)).contiguous()

    def compress(self, x: Tensor, rate: float, y: Tensor | None = None, z: Tensor | None = None) -> dict:
        """Code ``x`` at ``rate``; ``y`` codes that latent instead of ``g_a(x)``, ``z`` that
        hyper-latent (after its gain) instead of ``y``'s own (see ``models.refine``).

        Streams: the checkerboard's anchor and non-anchor halves of ``y``, then ``z``; CompressAI's
        rANS encoder writes them, ``models.runtime.rans`` reads them.
        """
        y = self.analyse(x) if y is None else y
        y_gain, z_gain, y_gain_inv, z_gain_inv = self.coding_gains(rate)
        hyper, prior = self.latent_codec["hyper"], self.integer_prior()
        z = hyper.h_a(y) * z_gain.float().view(1, -1, 1, 1) if z is None else z
        z_strings = hyper.entropy_bottleneck.compress(z)
        z_hat = hyper.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        side = prior.hyper(z_hat, z_gain_inv)
        y_strings, y_hat = prior.code_y(y.double() * y_gain.view(1, -1, 1, 1), side, _rans_encode)
        return {
            "strings": [[y_strings[0]], [y_strings[1]], z_strings],
            "shape": {"y": tuple(y.shape[1:]), "hyper": tuple(z.shape[-2:])},
            "y_hat": to_float(y_hat) * y_gain_inv.float().view(1, -1, 1, 1),
            "latent": y_hat,  # the exact integers the decoder entropy-decodes
        }

    def decompress(self, strings: list, shape: dict, rate: float) -> Tensor:
        """The image (1×3×H×W in [0, 1], padded size) of coded strings, decoded by the runtime."""
        return self.synthesise(self.decode_latent(strings, shape, rate), rate)

    def decode_latent(self, strings: list, shape: dict, rate: float) -> Tensor:
        """The exact integer latent ŷ (int64, at 2**-FRACTION_BITS) of coded strings: the same on every machine."""
        decoder = self.decoder()
        z_hat = decoder.z_hat(strings[2][0], (self.N, *shape["hyper"]))
        return decoder.prior.decode_y([strings[0][0], strings[1][0]], decoder.prior.hyper(z_hat, self.coding_gains(rate)[3]))

    def synthesise(self, y_hat: Tensor, rate: float) -> Tensor:
        """The image of an integer latent, by the runtime's float synthesis."""
        return synthesise(self.decoder().g_s, y_hat, self.coding_gains(rate)[2])


def _rans_encode(symbols: list[int], indexes: list[int], tables: CoderTables) -> bytes:
    from compressai.ans import RansEncoder

    return RansEncoder().encode_with_indexes(symbols, indexes, tables.cdf, tables.cdf_length, tables.offset)
