"""Move a ladder's trained rate rows down, so its lowest point reaches a lower budget.

A variable-rate network keeps one row of gains per trained λ.  When its lowest
point is still above the target bpp, ``shift_ladder_down`` drops the top ``k`` rows
and adds ``k`` rows below the lowest one, extrapolated geometrically (row −1 =
row 0 · row 0 / row 1, as the network interpolates between rows); the ladder
file's λ list moves the same way.  Fine-tune afterwards (``clic train --init``)
so the new rows learn their λ.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from eval.atomic import write_text

from .ladder import Ladder, ladder_file
from .weights import BadWeightsError, atomic_save, read_raw, weights_note


class ShiftError(ValueError):
    """A shift the ladder cannot take (too many rows, or a ladder file without one λ line)."""


# The per-rate gain tables of ``GainedAttentionCheckerboard`` (one row per λ).
GAIN_TABLES = ("y_gain", "y_gain_inv", "z_gain", "z_gain_inv")


def shift_rows(table: torch.Tensor, k: int) -> torch.Tensor:
    """Drop the top ``k`` rows, add ``k`` geometrically extrapolated rows below row 0."""
    if not 0 < k < table.shape[0] - 1:
        raise ShiftError(f"can shift by 1 to {table.shape[0] - 2} rows, not {k}")
    rows = table.float().abs()
    step = rows[0] / rows[1]
    below = torch.stack([rows[0] * step ** (k - i) for i in range(k)])
    return torch.cat([below, rows[: rows.shape[0] - k]]).to(table.dtype)


def shift_lambdas(lambdas: tuple[float, ...], k: int) -> list[float]:
    """The λ list moved the same way (geometric extrapolation, 3 significant digits)."""
    step = lambdas[0] / lambdas[1]
    below = [float(f"{lambdas[0] * step ** (k - i):.3g}") for i in range(k)]
    return below + list(lambdas[: len(lambdas) - k])


def shift_weights(state: dict[str, torch.Tensor], k: int, source: Path) -> dict[str, torch.Tensor]:
    missing = [name for name in GAIN_TABLES if name not in state]
    if missing:
        raise BadWeightsError(f"{source}: no gain table {missing[0]!r}; not a variable-rate network")
    return {name: shift_rows(t, k) if name in GAIN_TABLES else t for name, t in state.items()}


def rewrite_lambdas(path: Path, lambdas: list[float]) -> None:
    """Replace the ``lambdas = [...]`` line of a ladder file, keeping everything else."""
    text = path.read_text()
    line = "lambdas = [" + ", ".join(f"{v:g}" for v in lambdas) + "]"
    new, count = re.subn(r"^lambdas\s*=\s*\[[^\]]*\]", line, text, flags=re.MULTILINE)
    if count != 1:
        raise ShiftError(f"{path}: expected one 'lambdas = [...]' line, found {count}")
    write_text(path, new)  # atomic


def shift_ladder_down(ladder: Ladder, k: int, weights_out: Path) -> list[float]:
    """Shift ``ladder``'s weights into ``weights_out`` and its file's λ list; returns the new λ."""
    source = ladder.weights_path()
    shifted = shift_weights(read_raw(source), k, source)  # as stored (int8 stays int8)
    atomic_save(shifted, weights_out, {"ladder": ladder.name, "architecture": ladder.architecture,
                                       "note": f"rows shifted down by {k} from {source.name} ({weights_note(source)})"})
    lambdas = shift_lambdas(ladder.lambdas, k)
    rewrite_lambdas(ladder_file(ladder.name), lambdas)
    return lambdas
