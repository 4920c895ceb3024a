"""Decoding of CompressAI models imported with ``clic import`` (``models/zoo_import.py``).

A ladder file with ``architecture = "compressai:NAME"`` names one of the hyperprior
family of the CompressAI zoo, with one trained network per rung, all in one weights
file (tensors prefixed ``rung<i>.``; the header's rate is the rung).  As for the
built-in networks, every choice of probability table and mean is made in integers
(:mod:`.integer_prior`): the hyper-synthesis in exact fixed point, the scale index by
exact comparison with the scale table.  So an imported model's files decode to the
same latent on every machine, which CompressAI's own floating-point ``decompress``
does not promise; the autoregressive models (mbt2018, cheng2020) compute their masked
context and entropy parameters in integers too, position by position.  Streams: 0 =
``y``, 1 = empty, 2 = ``z`` (none for the factorized prior, whose ``y`` is coded by its
entropy bottleneck).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .bitstream import BadStreamError, Header
from .integer_prior import (
    FRACTION_BITS, ONE, CoderTables, IntegerLayer, IntegerSequential, leaky_relu, relu, to_fixed, to_float,
)
from .latents import bottleneck_symbols, latent_shapes, to_image
from .rans import RansStreamDecoder
from .safetensors import BadWeightsFileError
from .synthesis import AttentionBlock, InverseGDN, conv, deconv

PREFIX = "compressai:"


@dataclass(frozen=True)
class ZooKind:
    """How one CompressAI architecture codes its latent and synthesises the image."""

    prior: str  # "factorized" (entropy bottleneck only), "scale", "mean" or "context" (autoregressive)
    hyper_layers: tuple[str, ...] = ()  # the hyper-synthesis' layers (``IntegerSequential`` kinds)
    activation: str = "leaky"  # between the hyper-synthesis layers: "relu" or "leaky"
    final_relu: bool = False  # a ReLU after the hyper-synthesis' last layer
    hyper_on_abs: bool = False  # the hyper-analysis sees |y| (encoder side)
    synthesis: str = "gdn"  # "gdn" (Ballé et al.), "cheng" or "cheng-attention"


DECONVS = ("transposed", "transposed", "conv")
SUBPELS = ("conv", "subpel", "conv", "subpel", "conv")
KINDS = {
    "bmshj2018-factorized": ZooKind("factorized"),
    "bmshj2018-hyperprior": ZooKind("scale", DECONVS, "relu", final_relu=True, hyper_on_abs=True),
    "mbt2018-mean": ZooKind("mean", DECONVS),
    "mbt2018": ZooKind("context", DECONVS),
    "cheng2020-anchor": ZooKind("context", SUBPELS, synthesis="cheng"),
    "cheng2020-attn": ZooKind("context", SUBPELS, synthesis="cheng-attention"),
}
CONTEXT_KERNEL = 5  # the autoregressive models' masked 5×5 context convolution


def rung_prefix(rung: int) -> str:
    return f"rung{rung}."


def rung_state(state: dict[str, Tensor], rung: int) -> dict[str, Tensor]:
    """One rung's tensors, without their prefix."""
    prefix = rung_prefix(rung)
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def subpel(in_ch: int, out_ch: int) -> nn.Sequential:
    """CompressAI's ``subpel_conv3x3`` (upsampling by 2)."""
    return nn.Sequential(conv(in_ch, out_ch * 4, 3), nn.PixelShuffle(2))


class ResidualBlock(nn.Module):
    """CompressAI's ``ResidualBlock`` with equal input and output channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = conv(channels, channels, 3), conv(channels, channels, 3)
        self.leaky_relu = nn.LeakyReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x)))) + x


class ResidualBlockUpsample(nn.Module):
    """CompressAI's ``ResidualBlockUpsample`` by 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.subpel_conv, self.upsample = subpel(channels, channels), subpel(channels, channels)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv = conv(channels, channels, 3)
        self.igdn = InverseGDN(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.igdn(self.conv(self.leaky_relu(self.subpel_conv(x))))
        out += self.upsample(x)
        return out


def synthesis(kind: ZooKind, N: int, M: int) -> nn.Sequential:
    """The architecture's ``g_s`` (layer names as in CompressAI's state dicts)."""
    if kind.synthesis == "gdn":
        return nn.Sequential(deconv(M, N), InverseGDN(N), deconv(N, N), InverseGDN(N), deconv(N, N), InverseGDN(N),
                             deconv(N, 3))
    blocks = [ResidualBlock(N), ResidualBlockUpsample(N), ResidualBlock(N), ResidualBlockUpsample(N),
              ResidualBlock(N), ResidualBlockUpsample(N), ResidualBlock(N), subpel(N, 3)]
    if kind.synthesis == "cheng-attention":
        blocks.insert(4, AttentionBlock(N))
        blocks.insert(0, AttentionBlock(N))
    return nn.Sequential(*blocks)


def latent_channels(state: dict[str, Tensor]) -> tuple[int, int]:
    """(N, M) of a network's state: hyper-latent and latent channels."""
    if "context_prediction.weight" in state:
        M = int(state["context_prediction.weight"].shape[1])
        return int(state["entropy_bottleneck.quantiles"].shape[0]), M
    weight = state["g_s.0.weight"]
    return int(weight.shape[1]), int(weight.shape[0])


class Rung:
    """The decoder of one imported network: integer probability path, float synthesis."""

    def __init__(self, kind: ZooKind, state: dict[str, Tensor]):
        self.kind = kind
        self.N, self.M = latent_channels(state)
        self.bottleneck = CoderTables.of(state, "entropy_bottleneck")
        self.medians = state["entropy_bottleneck.quantiles"][:, 0, 1].reshape(1, -1, 1, 1).float()
        if kind.prior != "factorized":
            activation = relu if kind.activation == "relu" else leaky_relu
            self.h_s = IntegerSequential(state, "h_s", kind.hyper_layers, activation, kind.final_relu)
            self.tables = CoderTables.of(state, "gaussian_conditional")
            self.thresholds = state["gaussian_conditional.scale_table"].float()[:-1].double() * ONE
        if kind.prior == "context":
            mask = state["context_prediction.mask"]
            self.context = IntegerLayer.of(state, "context_prediction", False, mask)
            self.context.padding = 0  # applied to one 5×5 neighbourhood at a time
            self.entropy_parameters = IntegerSequential(state, "entropy_parameters", ("conv", "conv", "conv"))
        N = self.M if kind.synthesis.startswith("cheng") else self.N
        self.g_s = synthesis(kind, N, self.M)
        self.g_s.load_state_dict({k.removeprefix("g_s."): v.float() for k, v in state.items() if k.startswith("g_s.")})
        self.g_s.eval()

    def shapes(self, height: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(y, z) shapes of an image padded to a multiple of 64 (every zoo network has stride 16)."""
        shapes = latent_shapes(self.N, self.M, 16, height, width)
        return shapes["y"], shapes["hyper"]

    def bottleneck_hat(self, stream: bytes, shape: tuple[int, int, int]) -> Tensor:
        """Symbols of the entropy bottleneck plus its medians (float32, as CompressAI's decompress)."""
        return bottleneck_symbols(stream, shape, self.bottleneck, self.medians)

    def _index_and_means(self, out: Tensor) -> tuple[Tensor, Tensor]:
        scales, means = out.chunk(2, dim=1) if self.kind.prior != "scale" else (out, torch.zeros_like(out))
        return torch.bucketize(scales.double(), self.thresholds, right=False).int(), means

    def side(self, z_hat: Tensor) -> Tensor:
        """The hyper-synthesis' output (fixed point) for the decoded hyper-latent."""
        return self.h_s(to_fixed(z_hat.double()))

    def parameters(self, side: Tensor) -> tuple[Tensor, Tensor]:
        """(table index, mean in fixed point) of every latent element (models without a context)."""
        return self._index_and_means(side)

    def autoregressive(self, side: Tensor, code_one) -> Tensor:
        """Code ŷ position by position in raster order, as CompressAI's ``_compress_ar`` does:
        ``code_one(h, w, index, means) -> symbols`` of the M channels there; returns ŷ (fixed point)."""
        pad = CONTEXT_KERNEL // 2
        _, _, height, width = side.shape
        y_hat = torch.zeros((1, self.M, height + 2 * pad, width + 2 * pad), dtype=torch.long)
        for h in range(height):
            for w in range(width):
                context = self.context(y_hat[:, :, h:h + CONTEXT_KERNEL, w:w + CONTEXT_KERNEL])
                out = self.entropy_parameters(torch.cat((side[:, :, h:h + 1, w:w + 1], context), dim=1))
                index, means = self._index_and_means(out)
                q = code_one(h, w, index.flatten(), means.flatten())
                y_hat[0, :, h + pad, w + pad] = (q.long() << FRACTION_BITS) + means.flatten()
        return y_hat[:, :, pad:pad + height, pad:pad + width]

    def latent(self, header: Header, streams: list[bytes]) -> Tensor:
        """The exact latent ŷ (fixed point, as :func:`.integer_prior.to_float` reads it)."""
        y_shape, z_shape = self.shapes(header.height, header.width)
        if self.kind.prior == "factorized":
            return to_fixed(self.bottleneck_hat(streams[0], y_shape).double())
        side = self.side(self.bottleneck_hat(streams[2], z_shape))
        decoder = RansStreamDecoder(streams[0], self.tables.cdf, self.tables.cdf_length, self.tables.offset)
        if self.kind.prior == "context":
            return self.autoregressive(side, lambda h, w, index, means: torch.tensor(decoder.decode(index.tolist())))
        index, means = self.parameters(side)
        values = decoder.decode(index.flatten().tolist())
        return (torch.tensor(values, dtype=torch.long).view(index.shape) << FRACTION_BITS) + means

    @torch.inference_mode()
    def image(self, header: Header, y_hat: Tensor) -> np.ndarray:
        return to_image(self.g_s(to_float(y_hat))[..., : header.height, : header.width])


class ZooDecoder:
    """An imported ladder's decoder: one :class:`Rung` per rung, built when first used."""

    def __init__(self, architecture: str, state: dict[str, Tensor], source: object = "weights"):
        kind = KINDS.get(architecture.removeprefix(PREFIX))
        if kind is None:
            raise BadWeightsFileError(f"{source}: architecture {architecture!r} has no decoder here")
        self.kind, self.state, self.source = kind, state, source
        self.rungs: dict[int, Rung] = {}

    def rung(self, header: Header) -> Rung:
        rung = int(header.rate)
        if rung != header.rate or not rung_state(self.state, rung):
            raise BadStreamError(f"rate {header.rate:g} is not a rung of this imported model")
        if rung not in self.rungs:
            try:
                self.rungs[rung] = Rung(self.kind, rung_state(self.state, rung))
            except (KeyError, RuntimeError) as exc:
                first = str(exc).strip().splitlines()[0]
                raise BadWeightsFileError(f"{self.source}: rung {rung} does not fit its architecture ({first})") from None
        return self.rungs[rung]

    def latent(self, header: Header, streams: list[bytes]) -> Tensor:
        try:
            return self.rung(header).latent(header, streams)
        except (ValueError, IndexError) as exc:
            if isinstance(exc, (BadStreamError, BadWeightsFileError)):
                raise
            raise BadStreamError(f"corrupt entropy-coded data ({exc})") from None

    def image(self, header: Header, y_hat: Tensor) -> np.ndarray:
        return self.rung(header).image(header, y_hat)
