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

A network trained in floating point is converted as it loads (:class:`IntegerPrior`):
with 16-bit weights and ``2**-10`` activation steps the conversion costs about
nothing (``bench/bench_integer_prior.py`` measures it).
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FRACTION_BITS = 10  # activation a stands for a / 2**10
ACTIVATION_LIMIT = 1 << 20  # |a| ≤ 2**20, i.e. values within ±1024
WEIGHT_BITS = 15  # |w_int| ≤ 2**15 per output channel
EXACT_LIMIT = 1 << 53  # float64 holds every integer below this exactly
LEAKY_NUMERATOR, LEAKY_SHIFT = 655, 16  # LeakyReLU's 0.01 as 655 / 2**16
ONE = 1 << FRACTION_BITS


class NotIntegerCodableError(ValueError):
    """A network part the integer path cannot compute exactly."""


def _clamp(a: Tensor) -> Tensor:
    return a.clamp_(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)


class IntegerLayer:
    """A convolution or transposed convolution evaluated exactly on integer activations."""

    def __init__(self, module: nn.Conv2d | nn.ConvTranspose2d, weight: Tensor | None = None, name: str = ""):
        if module.groups != 1 or module.bias is None:
            raise NotIntegerCodableError(f"{name}: only ungrouped layers with a bias")
        self.transposed = isinstance(module, nn.ConvTranspose2d)
        self.stride, self.padding, self.dilation = module.stride, module.padding, module.dilation
        self.output_padding = getattr(module, "output_padding", (0, 0))
        w = (module.weight if weight is None else weight).detach().double().cpu()
        out_dim = 1 if self.transposed else 0
        other = [d for d in range(w.ndim) if d != out_dim]
        _, exponent = torch.frexp(w.abs().amax(dim=other))  # peak < 2**exponent
        shift = WEIGHT_BITS - exponent.long()
        if (shift < 1).any():
            raise NotIntegerCodableError(f"{name}: weights of magnitude 2**{WEIGHT_BITS - 1} or more")
        per_channel = [1] * w.ndim
        per_channel[out_dim] = -1
        self.weight = torch.round(w * torch.exp2(shift.double()).view(per_channel))
        self.bias = torch.round(module.bias.detach().double().cpu() * torch.exp2((shift + FRACTION_BITS).double()))
        self.shift = shift.view(1, -1, 1, 1)
        self.half = (torch.ones_like(shift) << (shift - 1)).view(1, -1, 1, 1)
        self.bias_int = self.bias.long().view(1, -1, 1, 1)
        bound = self.weight.abs().sum(dim=other) * ACTIVATION_LIMIT + self.bias.abs() + self.half.flatten()
        if (bound >= EXACT_LIMIT).any():
            raise NotIntegerCodableError(f"{name}: an accumulator could reach 2**53 (fan-in too large)")

    def __call__(self, a: Tensor) -> Tensor:
        x = a.to(torch.float64)
        if self.transposed:
            acc = F.conv_transpose2d(x, self.weight, None, self.stride, self.padding, self.output_padding,
                                     1, self.dilation)
        else:
            acc = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation)
        return _clamp((acc.long() + self.bias_int + self.half) >> self.shift)


def leaky_relu(a: Tensor) -> Tensor:
    return torch.where(a >= 0, a, (a * LEAKY_NUMERATOR) >> LEAKY_SHIFT)


class IntegerSequential:
    """A ``nn.Sequential`` of convolutions and LeakyReLUs (slope 0.01), in integers."""

    def __init__(self, seq: nn.Sequential, name: str):
        self.steps = []
        for i, module in enumerate(seq):
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                self.steps.append(IntegerLayer(module, name=f"{name}.{i}"))
            elif isinstance(module, nn.LeakyReLU) and module.negative_slope == 0.01:
                self.steps.append(leaky_relu)
            else:
                raise NotIntegerCodableError(f"{name}.{i}: {type(module).__name__} has no integer form")

    def __call__(self, a: Tensor) -> Tensor:
        for step in self.steps:
            a = step(a)
        return a


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
class _Tables:
    """CompressAI's coder tables as the lists its rANS coder takes (converted once)."""

    cdf: list
    cdf_length: list
    offset: list

    @classmethod
    def of(cls, model: nn.Module) -> _Tables:
        return cls(model._quantized_cdf.tolist(), model._cdf_length.reshape(-1).int().tolist(),
                   model._offset.reshape(-1).int().tolist())


class IntegerPrior:
    """The exact probability path of a gained hyperprior + checkerboard network.

    ``hyper(z_hat, rate)`` turns the decoded hyper-latent into the side
    parameters; ``code_y`` / ``decode_y`` run the two checkerboard passes,
    choosing each symbol's table and mean in integers.
    """

    def __init__(self, net: nn.Module):
        codec = net.latent_codec
        hyper, checkerboard = codec["hyper"], codec["y"]
        self.h_s = IntegerSequential(hyper.h_s, "latent_codec.hyper.h_s")
        self.entropy_parameters = IntegerSequential(checkerboard.entropy_parameters, "entropy_parameters")
        ctx = checkerboard.context_prediction
        self.context = IntegerLayer(ctx, weight=ctx.weight * ctx.mask, name="context_prediction")
        gaussian = checkerboard.latent_codec["y"]
        self.conditional = gaussian.gaussian_conditional
        self.tables = _Tables.of(self.conditional)
        self.thresholds = self.conditional.scale_table[:-1].double().cpu() * ONE  # exact: float32 × 2**10
        delta = getattr(gaussian, "delta", None)  # learnable reconstruction centres (``models.centres``)
        self.delta = None if delta is None else to_fixed(delta.detach()).view(-1, 1)
        self.channels = net.M

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

    def code_y(self, y: Tensor, side: Tensor) -> tuple[list[bytes], Tensor]:
        """Code the gained latent ``y`` (float, (1, M, H, W)): (two streams, ŷ as exact integers)."""
        y = y.detach().double().cpu()
        streams = []

        def code_one(index: Tensor, means: Tensor, where: Tensor) -> Tensor:
            q = torch.round(y[0][:, where] - means.double() / ONE).int()
            streams.append(self.conditional.entropy_coder.encode_with_indexes(
                q.flatten().tolist(), index.flatten().tolist(), self.tables.cdf, self.tables.cdf_length,
                self.tables.offset))
            return q

        return streams, self._passes(side, code_one)

    def decode_y(self, streams: list[bytes], side: Tensor) -> Tensor:
        """ŷ as exact integers from the two checkerboard streams."""
        pending = list(streams)

        def code_one(index: Tensor, means: Tensor, where: Tensor) -> Tensor:
            values = self.conditional.entropy_coder.decode_with_indexes(
                pending.pop(0), index.flatten().tolist(), self.tables.cdf, self.tables.cdf_length,
                self.tables.offset)
            return torch.tensor(values, dtype=torch.int32).view(index.shape)

        return self._passes(side, code_one)


def to_float(y_hat: Tensor) -> Tensor:
    """Integer ŷ -> float32 values (exact below 2**24)."""
    return (y_hat.double() / ONE).float()
