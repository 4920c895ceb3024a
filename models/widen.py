"""Start a ladder from another one's trained network: wider latent, other λ.

The transparent ladder needs more latent channels (M) and far higher λ than the
low-rate one, and training it from scratch on a CPU would take days.
``widen_state`` carries a trained network over instead:

- every tensor keeps its trained values in its old channels; a new input
  channel of an old unit gets weight 0, so old units compute what they did,
  and new units keep their fresh initialisation.  The wider network decodes
  exactly as the trained one (its new latent channels are coded, unused) until
  training puts them to work;
- a dimension of k·M channels (k = 2 or 4: the context and hyper-synthesis
  outputs, the (scales, means) of the entropy parameters and their
  concatenation) widens block by block, so ``chunk(2)`` still splits scales from
  means; any other widened dimension keeps its old channels first;
- the gain tables move to the new ladder's λ, geometric in log λ: per channel
  between the trained rows, by one median slope for all channels beyond them,
  each inverse keeping its channel's gain × inverse (``retarget_gain_tables``),
  so the new rows start near their rates.

- a stride-16 network can start a stride-8 one: the stage between 1/8 and 1/16
  resolution (``STRIDE_16_STAGE``) is left out, every other layer keeps its
  weights (its index in ``g_a`` / ``g_s`` moves down past the gap).

Only M and the stride may change; N (transforms, hyper-latent) must match.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn

from .architecture import STRIDE_16_STAGE
from .extend import GAIN_TABLES
from .ladder import Ladder
from .weights import BadWeightsError, build, export, load_into, load_state, weights_note


class WidenError(ValueError):
    """Weights that cannot be carried over to this network."""


def channel_map(old: int, new: int, m_old: int, m_new: int) -> list[tuple[slice, slice]]:
    """(old slice, new slice) pairs carrying the old channels of one dimension."""
    for k in (2, 4):
        if (old, new) == (k * m_old, k * m_new):
            return [(slice(i * m_old, (i + 1) * m_old), slice(i * m_new, i * m_new + m_old)) for i in range(k)]
    return [(slice(0, old), slice(0, old))]


def conv_axes(net: nn.Module) -> dict[str, tuple[int, int]]:
    """(output axis, input axis) of every convolution weight (transposed ones are in × out)."""
    axes = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.ConvTranspose2d):
            axes[f"{name}.weight"] = (1, 0)
        elif isinstance(module, nn.Conv2d):
            axes[f"{name}.weight"] = (0, 1)
    return axes


def widen_tensor(old: torch.Tensor, fresh: torch.Tensor, m_old: int, m_new: int,
                 axes: tuple[int, int] | None) -> torch.Tensor:
    """``fresh`` with ``old`` written into its old channels, old units blind to new inputs."""
    out = fresh.clone()
    maps = [channel_map(o, n, m_old, m_new) for o, n in zip(old.shape, fresh.shape)]
    if axes is not None and old.shape[axes[1]] != fresh.shape[axes[1]]:
        out_axis = axes[0]
        for _, kept in maps[out_axis]:
            index = [slice(None)] * out.ndim
            index[out_axis] = kept
            out[tuple(index)] = 0
    for pairs in itertools.product(*maps):
        out[tuple(new for _, new in pairs)] = old[tuple(src for src, _ in pairs)]
    return out


def retarget_gains(table: torch.Tensor, lambdas: tuple[float, ...], targets: tuple[float, ...],
                   beyond: Literal["median", "flat"] = "median") -> torch.Tensor:
    """Gain rows at ``targets``, geometric in log λ: per channel between the trained rows;
    beyond them, the outermost row moved by the median slope of the outer pair (the
    lower one of an even count, as ``torch.median``), the same for every channel
    (``beyond="flat"``: held).  Per-channel slopes scatter: carried
    over the nine row steps from the psnr ladder up to the transparent one, they blew
    single gains up 100-fold and training diverged.  The median y slope sits at the
    high-rate law's ±0.5."""
    if beyond not in ("median", "flat"):
        raise ValueError(f"beyond must be 'median' or 'flat', got {beyond!r}")
    logs = [math.log(v) for v in lambdas]
    rows = table.float().abs().log()
    out = []
    for target in targets:
        t = math.log(target)
        lo = min(max(sum(v <= t for v in logs) - 1, 0), len(logs) - 2)
        slopes = (rows[lo + 1] - rows[lo]) / (logs[lo + 1] - logs[lo])
        if logs[0] <= t <= logs[-1]:
            out.append((rows[lo] + (t - logs[lo]) * slopes).exp())
        else:
            edge = lo + 1 if t > logs[-1] else lo
            slope = slopes.median() if beyond == "median" else 0.0
            out.append((rows[edge] + (t - logs[edge]) * slope).exp())
    return torch.stack(out)


def retarget_gain_tables(tables: dict[str, torch.Tensor], lambdas: tuple[float, ...],
                         targets: tuple[float, ...]) -> dict[str, torch.Tensor]:
    """The four gain tables (``GAIN_TABLES``) at ``targets``: each gain by ``retarget_gains``,
    its inverse so that gain × inverse, per channel the scale the synthesis sees, follows
    the trained rows between them and stays at the edge row's beyond them.  A target equal to
    a trained λ keeps that λ's rows exactly."""
    out = {}
    for gain in ("y_gain", "z_gain"):
        inverse = f"{gain}_inv"
        product = tables[gain].float().abs() * tables[inverse].float().abs()
        out[gain] = retarget_gains(tables[gain], lambdas, targets)
        out[inverse] = retarget_gains(product, lambdas, targets, beyond="flat") / out[gain]
    for row, target in enumerate(targets):  # a trained λ keeps its rows bit for bit: its points code as before
        if target in lambdas:
            for name in GAIN_TABLES:
                out[name][row] = tables[name][lambdas.index(target)].float()
    return out


def drop_stride_16_stage(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stride-16 network's state without its ``STRIDE_16_STAGE`` layers, the later
    layers of ``g_a`` and ``g_s`` renumbered to their places in a stride-8 network."""
    out = {}
    for name, tensor in state.items():
        transform, _, rest = name.partition(".")
        dropped = STRIDE_16_STAGE.get(transform)
        if dropped is None:
            out[name] = tensor
            continue
        index, _, field = rest.partition(".")
        if int(index) in dropped:
            continue
        shift = len(dropped) if int(index) > max(dropped) else 0
        out[f"{transform}.{int(index) - shift}.{field}"] = tensor
    return out


def widen_state(
    net: nn.Module, state: dict[str, torch.Tensor], lambdas: tuple[float, ...], targets: tuple[float, ...],
    source: str, source_stride: int = 16,
) -> dict[str, torch.Tensor]:
    """A state for ``net`` (same architecture, M ≥ the trained one, stride ≤ ``source_stride``)
    from the trained ``state``."""
    if source_stride != net.stride:
        if (source_stride, net.stride) != (16, 8):
            raise WidenError(f"{source}: a stride-{source_stride} network cannot start a stride-{net.stride} one")
        state = drop_stride_16_stage(state)
    fresh = net.state_dict()
    unknown = [k for k in state if k not in fresh]
    if unknown:
        raise BadWeightsError(f"{source}: {unknown[0]} has no place in the {type(net).__name__} to widen into")
    missing = [name for name in GAIN_TABLES if name not in state]
    if missing:
        raise WidenError(f"{source}: no gain table {missing[0]!r}; not a variable-rate network")
    m_old, m_new = state["y_gain"].shape[1], net.M
    if state["z_gain"].shape[1] != net.N or m_old > m_new:
        raise WidenError(f"{source}: N={state['z_gain'].shape[1]}, M={m_old} cannot widen to N={net.N}, M={m_new} "
                         "(only M may grow)")
    axes = conv_axes(net)
    gains = retarget_gain_tables(state, lambdas, targets)
    out = dict(fresh)
    for name, tensor in state.items():
        if fresh[name].numel() == 0:  # entropy-coding tables, sized on load, rebuilt on export
            out[name] = tensor
            continue
        tensor = gains.get(name, tensor)
        if tensor.shape == fresh[name].shape:
            out[name] = tensor.to(fresh[name].dtype)
        elif tensor.ndim == fresh[name].ndim:
            fill = fresh[name] if name not in GAIN_TABLES else tensor.mean(dim=1, keepdim=True).expand_as(fresh[name])
            out[name] = widen_tensor(tensor.to(fresh[name].dtype), fill, m_old, m_new, axes.get(name))
        else:
            raise BadWeightsError(f"{source}: {name} is {tuple(tensor.shape)}, the network's {tuple(fresh[name].shape)}")
    return out


def widen_weights(target: Ladder, source: Ladder, weights: Path, out: Path) -> None:
    """Write ``target``'s network, carried over from ``source``'s trained ``weights``, to ``out``."""
    net = build(target)
    stride = dict(source.arch).get("stride", 16)
    state = widen_state(net, load_state(weights), source.lambdas, target.lambdas, str(weights), stride)
    load_into(net, state, weights)
    export(net, target, out, note=f"widened from {weights.name}: {weights_note(weights)}")
