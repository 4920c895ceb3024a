"""The entropy-parameter path in integer arithmetic: the same probability tables on every machine.

A range decoder reproduces the encoder's symbols only if it picks, for every symbol,
the CDF table and the mean the encoder picked.  Computed in floating point, those
depend on summation order: the thread count, the SIMD width (AVX-512, AVX2, SSE),
the BLAS library, the GPU.  One bin off, and every later symbol of the stream
decodes to garbage.  Here everything that decides them has one exact definition
(Ballé, Johnston and Minnen 2019, "Integer networks for data compression with
latent-variable models"):

- **Activations** are integers ``a`` standing for ``a · 2**-FRACTION_BITS``,
  clamped to ``±ACTIVATION_LIMIT``.
- **A layer** (convolution or transposed convolution) has integer weights
  ``round(w · 2**e_c)``, one power-of-two scale per output channel ``c`` chosen so
  that ``|w_int| ≤ 2**WEIGHT_BITS``, and an integer bias at the accumulator's
  scale.  The accumulator ``Σ w_int · a`` is computed by an ordinary float64
  convolution: every product and partial sum is an integer below ``2**53``
  (checked when the layer is built), so float64 holds it exactly in any
  summation order, on any instruction set or GPU.  The output is
  ``(acc + bias + 2**(e_c - 1)) >> e_c``: rounded back to the activation scale.
- **LeakyReLU** is ``x`` for ``x ≥ 0``, else ``floor(x · 655 / 2**16)`` (slope 0.009995).
- **Gains** of a fractional rate (geometric between two rows) come from Python's
  ``decimal`` ``ln`` and ``exp``, which are correctly rounded by definition.
- **Scale index**: how many entries of the scale table lie below the integer scale
  (CompressAI's rule), compared exactly in float64.
- **Means** are integers at the activation scale, so ``ŷ = q + μ`` is exact.

The CDF tables themselves are integers stored with the weights.  The analysis and
synthesis transforms stay in floating point: a decoder on another machine gets the
same latents and pixels within rounding of the synthesis.

A network trained in floating point is converted as it loads (:class:`IntegerPrior`,
from its state dict):
with 16-bit weights and ``2**-10`` activation steps the conversion costs about
nothing (``bench/bench_integer_prior.py`` measures it).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from .rans import decode_with_indexes

FRACTION_BITS = 10  # activation a stands for a / 2**10
ACTIVATION_LIMIT = 1 << 20  # |a| ≤ 2**20, i.e. values within ±1024
WEIGHT_BITS = 15  # |w_int| ≤ 2**15 per output channel
EXACT_LIMIT = 1 << 53  # float64 holds every integer below this exactly
LEAKY_NUMERATOR, LEAKY_SHIFT = 655, 16  # LeakyReLU's 0.01 as 655 / 2**16
ONE = 1 << FRACTION_BITS


Coder = Callable[[list, list, "CoderTables"], bytes]  # an rANS encoder: (symbols, table indexes, tables) -> bytes


class NotIntegerCodableError(ValueError):
    """A network part the integer path cannot compute exactly."""


def _clamp(a: Tensor) -> Tensor:
    return a.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


class IntegerLayer:
    """A convolution or transposed convolution evaluated exactly on integer activations.

    Geometry as in the networks here: a transposed convolution has stride 2, padding
    ``k // 2`` and output padding 1 (CompressAI's ``deconv``); a convolution stride 1,
    padding ``k // 2``.
    """

    def __init__(self, weight: Tensor, bias: Tensor, transposed: bool, name: str = "", padding: int | None = None):
        self.transposed = transposed
        self.padding = weight.shape[-1] // 2 if padding is None else padding
        w = weight.detach().double().cpu()
        out_dim = 1 if transposed else 0
        other = [d for d in range(w.ndim) if d != out_dim]
        _, exponent = torch.frexp(w.abs().amax(dim=other))  # peak < 2**exponent
        shift = WEIGHT_BITS - exponent.long()
        if (shift < 1).any():
            raise NotIntegerCodableError(f"{name}: weights of magnitude 2**{WEIGHT_BITS - 1} or more")
        per_channel = [1] * w.ndim
        per_channel[out_dim] = -1
        self.weight = torch.round(w * torch.exp2(shift.double()).view(per_channel))
        exact_bias = torch.round(bias.detach().double().cpu() * torch.exp2((shift + FRACTION_BITS).double()))
        self.shift = shift.view(1, -1, 1, 1)
        self.half = (torch.ones_like(shift) << (shift - 1)).view(1, -1, 1, 1)
        self.bias = exact_bias.long().view(1, -1, 1, 1)
        bound = self.weight.abs().sum(dim=other) * ACTIVATION_LIMIT + exact_bias.abs() + self.half.flatten()
        if (bound >= EXACT_LIMIT).any():
            raise NotIntegerCodableError(f"{name}: an accumulator could reach 2**53 (fan-in too large)")

    @classmethod
    def of(cls, state: dict[str, Tensor], name: str, transposed: bool, mask: Tensor | None = None) -> IntegerLayer:
        weight = state[f"{name}.weight"]
        return cls(weight if mask is None else weight * mask, state[f"{name}.bias"], transposed, name)

    def __call__(self, a: Tensor) -> Tensor:
        x = a.to(torch.float64)
        if self.transposed:
            acc = F.conv_transpose2d(x, self.weight, None, 2, self.padding, 1)
        else:
            acc = F.conv2d(x, self.weight, None, 1, self.padding)
        return _clamp((acc.long() + self.bias + self.half) >> self.shift)


def leaky_relu(a: Tensor) -> Tensor:
    return torch.where(a >= 0, a, (a * LEAKY_NUMERATOR) >> LEAKY_SHIFT)


def relu(a: Tensor) -> Tensor:
    return a.clamp(min=0)


class SubPixelLayer:
    """CompressAI's ``subpel_conv3x3``: a convolution (at ``NAME.0``), then a pixel shuffle by 2 (exact)."""

    def __init__(self, state: dict[str, Tensor], name: str):
        self.conv = IntegerLayer.of(state, f"{name}.0", False)

    def __call__(self, a: Tensor) -> Tensor:
        return F.pixel_shuffle(self.conv(a), 2)


class IntegerSequential:
    """Layers (``"conv"``, ``"transposed"`` or ``"subpel"``, at their index) with an integer
    activation (LeakyReLU unless told) between them, and after the last one if ``final``."""

    def __init__(self, state: dict[str, Tensor], prefix: str, kinds: tuple[str, ...],
                 activation: Callable[[Tensor], Tensor] = leaky_relu, final: bool = False):
        self.layers = [SubPixelLayer(state, f"{prefix}.{2 * i}") if kind == "subpel"
                       else IntegerLayer.of(state, f"{prefix}.{2 * i}", kind == "transposed")
                       for i, kind in enumerate(kinds)]
        self.activation, self.final = activation, final

    def __call__(self, a: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            a = layer(a if i == 0 else self.activation(a))
        return self.activation(a) if self.final else a


# The probability path of the networks here (``models.architecture``): layer kinds in order,
# LeakyReLU (slope 0.01) between them, at state-dict indices 0, 2, 4.
HYPER_SYNTHESIS = ("transposed", "transposed", "conv")
ENTROPY_PARAMETERS = ("conv", "conv", "conv")
HYPER, LATENT = "latent_codec.hyper.", "latent_codec.y."
GAUSSIAN = LATENT + "y."
# Learnable reconstruction centres (``models.centres``): δ = CENTRE_SHIFT_SCALE · centre_shift.  Adam
# moves a parameter by about lr per step, so the scale lets δ travel a useful fraction of a bin
# within a few thousand steps at lr 1e-4.
CENTRE_SHIFT_SCALE = 10.0


def checkerboard_mask(kernel: int) -> Tensor:
    """CompressAI's checkerboard context mask: the taps at odd (i + j), i.e. the anchors."""
    rows, cols = torch.arange(kernel)[:, None], torch.arange(kernel)[None, :]
    return ((rows + cols) % 2 == 1).to(torch.float32)


def to_fixed(x: Tensor) -> Tensor:
    """Float values -> integer activations (round half to even, clamped): exact for float64 products."""
    return _clamp(torch.round(x.double() * ONE).long())


@lru_cache(maxsize=64)
def _interpolated(row_lo: tuple[float, ...], row_hi: tuple[float, ...], code: int) -> tuple[float, ...]:
    if code == 0:
        return row_lo
    with decimal.localcontext() as ctx:
        ctx.prec = 34
        t = decimal.Decimal(code) / 256
        return tuple(
            float(((1 - t) * decimal.Decimal(a).ln() + t * decimal.Decimal(b).ln()).exp())
            for a, b in zip(row_lo, row_hi)
        )


def exact_gain(table: Tensor, rate: float) -> Tensor:
    """A gain table's row at ``rate`` (a multiple of 1/256), geometric between rows, as float64 (C,):
    the one exact definition the coder uses (training's ``gains`` is the same to float rounding)."""
    n = table.shape[0]
    code = round(min(max(rate, 0.0), n - 1.0) * 256)
    lo = min(code // 256, n - 2)
    rows = table.detach().abs().double().cpu()
    return torch.tensor(_interpolated(tuple(rows[lo].tolist()), tuple(rows[lo + 1].tolist()), code - 256 * lo),
                        dtype=torch.float64)


def anchor_mask(height: int, width: int) -> Tensor:
    """The checkerboard's anchors (coded first, without context): (i + j) even."""
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    return (rows + cols) % 2 == 0


@dataclass
class CoderTables:
    """An entropy model's integer CDF tables as the rANS coders take them (lists, converted once)."""

    cdf: list
    cdf_length: list
    offset: list

    @classmethod
    def of(cls, state: dict[str, Tensor], prefix: str) -> CoderTables:
        return cls(state[f"{prefix}._quantized_cdf"].tolist(), state[f"{prefix}._cdf_length"].reshape(-1).int().tolist(),
                   state[f"{prefix}._offset"].reshape(-1).int().tolist())


class IntegerPrior:
    """The exact probability path of a gained hyperprior + checkerboard network, built from its
    state dict (float32 tensors, the training network's names).

    ``hyper(z_hat, z_gain_inv)`` turns the decoded hyper-latent into the side parameters;
    ``passes`` runs the two checkerboard passes, choosing each symbol's table and mean in
    integers and handing them to the coder.
    """

    def __init__(self, state: dict[str, Tensor]):
        self.h_s = IntegerSequential(state, HYPER + "h_s", HYPER_SYNTHESIS)
        self.entropy_parameters = IntegerSequential(state, LATENT + "entropy_parameters", ENTROPY_PARAMETERS)
        context = state[LATENT + "context_prediction.weight"]
        self.context = IntegerLayer.of(state, LATENT + "context_prediction", False, checkerboard_mask(context.shape[-1]))
        self.tables = CoderTables.of(state, GAUSSIAN + "gaussian_conditional")
        scale_table = state[GAUSSIAN + "gaussian_conditional.scale_table"].float()
        self.thresholds = scale_table[:-1].double() * ONE  # exact: float32 × 2**10
        shift = state.get(GAUSSIAN + "centre_shift")  # learnable reconstruction centres (``models.centres``)
        self.delta = None if shift is None else to_fixed(CENTRE_SHIFT_SCALE * shift.float()).view(-1, 1)
        self.channels = context.shape[1]

    def hyper(self, z_hat: Tensor, z_gain_inv: Tensor) -> Tensor:
        """Side parameters (integers) from the decoded hyper-latent and the rate's ``z_gain_inv`` (float64, (N,))."""
        return self.h_s(to_fixed(z_hat.double().cpu() * z_gain_inv.view(1, -1, 1, 1)))

    def _params(self, side: Tensor, context: Tensor, where: Tensor) -> tuple[Tensor, Tensor]:
        """(table index, mean) of every channel at the positions ``where``: (M, n) each."""
        features = torch.cat((context[0][:, where], side[0][:, where]), dim=0)  # (4M, n)
        out = self.entropy_parameters(features[None, :, :, None])[0, :, :, 0]
        scales, means = out[: self.channels], out[self.channels :]
        index = torch.bucketize(scales.double(), self.thresholds, right=False).int()
        return index, means

    def _reconstruct(self, q: Tensor, means: Tensor) -> Tensor:
        y_hat = (q.long() << FRACTION_BITS) + means
        if self.delta is not None:
            y_hat -= torch.sign(q).long() * self.delta
        return y_hat

    def _passes(self, side: Tensor, code_one) -> Tensor:
        """Run anchor then non-anchor pass; ``code_one(index, means, where) -> q`` codes one pass."""
        _, _, height, width = side.shape
        anchors = anchor_mask(height, width)
        y_hat = torch.zeros((1, self.channels, height, width), dtype=torch.long)
        context = torch.zeros((1, 2 * self.channels, height, width), dtype=torch.long)
        for step, where in enumerate((anchors, ~anchors)):
            if step == 1:
                context = self.context(_clamp(y_hat.clone()))
            index, means = self._params(side, context, where)
            q = code_one(index, means, where)
            y_hat[0][:, where] = self._reconstruct(q, means)
        return y_hat

    def code_y(self, y: Tensor, side: Tensor, encode: Coder) -> tuple[list[bytes], Tensor]:
        """Code the gained latent ``y`` (float, (1, M, H, W)) with ``encode(symbols, indexes, tables)``:
        (the two streams, ŷ as exact integers)."""
        y = y.detach().double().cpu()
        streams = []

        def code_one(index: Tensor, means: Tensor, where: Tensor) -> Tensor:
            q = torch.round(y[0][:, where] - means.double() / ONE).int()
            streams.append(encode(q.flatten().tolist(), index.flatten().tolist(), self.tables))
            return q

        return streams, self._passes(side, code_one)

    def decode_y(self, streams: list[bytes], side: Tensor) -> Tensor:
        """ŷ as exact integers from the two checkerboard streams."""
        pending = list(streams)

        def code_one(index: Tensor, means: Tensor, where: Tensor) -> Tensor:
            values = decode_with_indexes(pending.pop(0), index.flatten().tolist(), self.tables.cdf,
                                         self.tables.cdf_length, self.tables.offset)
            return torch.tensor(values, dtype=torch.int32).view(index.shape)

        return self._passes(side, code_one)


def to_float(y_hat: Tensor) -> Tensor:
    """Integer ŷ -> float32 values (exact below 2**24)."""
    return (y_hat.double() / ONE).float()
