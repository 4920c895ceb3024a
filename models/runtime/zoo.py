"""Decoding of CompressAI models imported with ``clic import`` (``models/zoo_import.py``).

A ladder file with ``architecture = "compressai:NAME"`` names one of the hyperprior
family of the CompressAI zoo, with one trained network per rung, all in one weights
file (tensors prefixed ``rung<i>.``; the header's rate is the rung).  As for the
built-in networks, every choice of probability table and mean is made in integers
(:mod:`.integer_prior`): the hyper-synthesis in exact fixed point, the scale index by
exact comparison with the scale table.  So an imported model's files decode to the
same latent on every machine, which CompressAI's own floating-point ``decompress``
does not promise.  Streams: 0 = ``y``, 1 = empty, 2 = ``z`` (none for the factorized
prior, whose ``y`` is coded by its entropy bottleneck).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .bitstream import BadStreamError, Header
from .integer_prior import FRACTION_BITS, ONE, CoderTables, IntegerSequential, leaky_relu, relu, to_fixed, to_float
from .rans import decode_with_indexes
from .safetensors import BadWeightsFileError
from .synthesis import InverseGDN, deconv

PREFIX = "compressai:"


@dataclass(frozen=True)
class ZooKind:
    """How one CompressAI architecture codes its latent."""

    hyperprior: bool  # False: the factorized prior (entropy bottleneck only)
    means: bool  # the hyper-synthesis also predicts means (second half of its output)
    activation: str  # between the hyper-synthesis layers: "relu" or "leaky"
    final_relu: bool  # a ReLU after the hyper-synthesis' last layer
    hyper_on_abs: bool  # the hyper-analysis sees |y| (encoder side)


# The zoo architectures whose probability path the integer decoder computes.  Those with an
# autoregressive context (mbt2018, cheng2020-*) decode position by position and are not supported.
KINDS = {
    "bmshj2018-factorized": ZooKind(hyperprior=False, means=False, activation="", final_relu=False, hyper_on_abs=False),
    "bmshj2018-hyperprior": ZooKind(hyperprior=True, means=False, activation="relu", final_relu=True, hyper_on_abs=True),
    "mbt2018-mean": ZooKind(hyperprior=True, means=True, activation="leaky", final_relu=False, hyper_on_abs=False),
}
HYPER_SYNTHESIS = ("transposed", "transposed", "conv")


def rung_prefix(rung: int) -> str:
    return f"rung{rung}."


def rung_state(state: dict[str, Tensor], rung: int) -> dict[str, Tensor]:
    """One rung's tensors, without their prefix."""
    prefix = rung_prefix(rung)
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def synthesis(N: int, M: int) -> nn.Sequential:
    """CompressAI's ``g_s`` of these models (layer names as in its state dict)."""
    return nn.Sequential(deconv(M, N), InverseGDN(N), deconv(N, N), InverseGDN(N), deconv(N, N), InverseGDN(N),
                         deconv(N, 3))


class Rung:
    """The decoder of one imported network: integer probability path, float synthesis."""

    def __init__(self, kind: ZooKind, state: dict[str, Tensor]):
        self.kind = kind
        self.N, self.M = state["g_s.0.weight"].shape[1], state["g_s.0.weight"].shape[0]
        self.bottleneck = CoderTables.of(state, "entropy_bottleneck")
        self.medians = state["entropy_bottleneck.quantiles"][:, 0, 1].reshape(1, -1, 1, 1).float()
        if kind.hyperprior:
            activation = relu if kind.activation == "relu" else leaky_relu
            self.h_s = IntegerSequential(state, "h_s", HYPER_SYNTHESIS, activation, kind.final_relu)
            self.tables = CoderTables.of(state, "gaussian_conditional")
            self.thresholds = state["gaussian_conditional.scale_table"].float()[:-1].double() * ONE
        self.g_s = synthesis(self.N, self.M)
        self.g_s.load_state_dict({k.removeprefix("g_s."): v.float() for k, v in state.items() if k.startswith("g_s.")})
        self.g_s.eval()

    def shapes(self, height: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(y, z) shapes of an image padded to a multiple of 64."""
        hp, wp = height + -height % 64, width + -width % 64
        return (self.M, hp // 16, wp // 16), (self.N, hp // 64, wp // 64)

    def bottleneck_hat(self, stream: bytes, shape: tuple[int, int, int]) -> Tensor:
        """Symbols of the entropy bottleneck plus its medians (float32, as CompressAI's decompress)."""
        channels, height, width = shape
        indexes = torch.arange(channels).repeat_interleave(height * width).tolist()
        values = decode_with_indexes(stream, indexes, self.bottleneck.cdf, self.bottleneck.cdf_length,
                                     self.bottleneck.offset)
        return torch.tensor(values, dtype=torch.int32).view(1, *shape).float() + self.medians

    def parameters(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """(table index, mean in fixed point) of every latent element, from the decoded hyper-latent."""
        out = self.h_s(to_fixed(z_hat.double()))
        scales, means = out.chunk(2, dim=1) if self.kind.means else (out, torch.zeros_like(out))
        return torch.bucketize(scales.double(), self.thresholds, right=False).int(), means

    def latent(self, header: Header, streams: list[bytes]) -> Tensor:
        """The exact latent ŷ (fixed point, as :func:`.integer_prior.to_float` reads it)."""
        y_shape, z_shape = self.shapes(header.height, header.width)
        if not self.kind.hyperprior:
            return to_fixed(self.bottleneck_hat(streams[0], y_shape).double())
        index, means = self.parameters(self.bottleneck_hat(streams[2], z_shape))
        values = decode_with_indexes(streams[0], index.flatten().tolist(), self.tables.cdf, self.tables.cdf_length,
                                     self.tables.offset)
        return (torch.tensor(values, dtype=torch.long).view(index.shape) << FRACTION_BITS) + means

    @torch.inference_mode()
    def image(self, header: Header, y_hat: Tensor) -> np.ndarray:
        x = self.g_s(to_float(y_hat)).clamp_(0, 1)[..., : header.height, : header.width]
        return x[0].mul(255).round().byte().permute(1, 2, 0).numpy()


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
