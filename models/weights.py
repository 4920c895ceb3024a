"""Weights on disk: safetensors only (no pickle), float16 for the parameters.

The entropy coder's integer CDF tables are stored beside the parameters, so a
decoder uses exactly the tables the encoder used.  Export rounds the parameters
to float16 *before* computing those tables, so nothing differs after loading.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
from compressai.registry import MODELS
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .architecture import GainedAttentionCheckerboard  # noqa: F401  (registers the model)
from .ladder import Ladder


class BadWeightsError(ValueError):
    """A weights file that is missing, unreadable or does not fit its ladder."""


def build(ladder: Ladder) -> torch.nn.Module:
    """A freshly initialised network of the ladder's architecture."""
    return MODELS[ladder.architecture](**dict(ladder.arch))


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; weights are shipped and read by others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(net: torch.nn.Module, ladder: Ladder, path: Path, note: str = "") -> None:
    """Round to float16, rebuild the entropy tables, save as safetensors."""
    net = net.eval().half().float()
    net.update(force=True)
    state = {
        k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()
    }
    atomic_save(state, path, {"ladder": ladder.name, "architecture": ladder.architecture, "note": note})


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle) or fail with one clear line."""
    if not path.is_file():
        raise BadWeightsError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadWeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def load_into(net: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``net`` (resizing the CDF buffers), in float32.

    A float buffer stored as the float16 rounding of the network's own constant
    keeps the exact constant: float16 flushes CompressAI's likelihood bound
    (1e-9) and GDN pedestal (2**-36) to 0, and a zero likelihood bound makes
    the rate term infinite (NaN training) when training starts from exported
    weights.  The entropy tables do not depend on these constants.
    """
    own = dict(net.named_buffers())

    def exact(key: str, value: torch.Tensor) -> torch.Tensor:
        mine = own.get(key)
        if (
            value.dtype == torch.float16 and mine is not None and mine.is_floating_point()
            and mine.shape == value.shape and torch.equal(mine.half(), value)
        ):  # fmt: skip
            return mine.detach().clone().float()
        return value.float()

    state = {k: (exact(k, v) if v.is_floating_point() else v) for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BadWeightsError(f"{source}: does not fit the ladder's network ({first})") from None


@lru_cache(maxsize=8)
def load_network(ladder: Ladder, weights_dir: Path | None = None) -> torch.nn.Module:
    """The trained network of a ladder, ready to code (cached per process)."""
    path = ladder.weights_path(weights_dir)
    net = build(ladder)
    load_into(net, load_state(path), path)
    return net.eval()
