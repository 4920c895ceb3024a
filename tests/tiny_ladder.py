"""Tiny learned ladders (a few-thousand-parameter network) for the tests that need one.

``write_ladder`` writes a ladder file, ``installed`` makes a folder of them the pipeline's
ladder folder (``models.ladder.LADDER_DIR``, optionally ``WEIGHTS_DIR``) with a fresh network
cache, and ``train_tiny`` trains the ``tiny`` ladder a few steps on Kodak crops and exports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import models.ladder
from corpus import KODAK
from models.train import TrainConfig, Trainer, train
from models.weights import build, export, load_network

LADDER = """\
name = "{name}"
model_id = {model_id}
architecture = "gained-attn-checkerboard"
metric = "{metric}"
weights = "{name}.safetensors"
lambdas = {lambdas}
{precision}
[arch]
N = {N}
M = {M}
n_rates = {n_rates}
{options}{points}"""


def write_ladder(
    folder: Path, name: str = "tiny", model_id: int = 250, *, metric: str = "mse",
    lambdas: Iterable[float] = (0.001, 0.01), N: int = 16, M: int = 24, rates: Iterable[float] = (0.0, 1.0),
    flags: tuple[str, ...] = (), precision: str | None = None, stride: int | None = None,
    keep_float16: tuple[str, ...] = (),
) -> Path:
    """Write ``folder/NAME.toml``: one gain row per lambda, one ladder point per rate,
    each of ``flags`` (``postfilter``, ``centres``) switched on in ``[arch]``, the
    ``stride``, the weights ``precision`` and ``keep_float16`` lines if given."""
    lambdas = list(lambdas)
    points = "".join(f"\n[[points]]\nrate = {r}\n" for r in rates)
    path = folder / f"{name}.toml"
    path.write_text(LADDER.format(name=name, model_id=model_id, metric=metric, lambdas=lambdas, N=N, M=M,
                                  n_rates=len(lambdas), points=points,
                                  precision=(f'precision = "{precision}"\n' if precision else "")
                                  + (f"keep_float16 = {list(keep_float16)}\n" if keep_float16 else ""),
                                  options="".join(f"{flag} = true\n" for flag in flags)
                                  + (f"stride = {stride}\n" if stride else "")))
    return path


@contextmanager
def installed(ladders: Path, weights: Path | None = None) -> Iterator[Path]:
    """Make ``ladders`` (and ``weights``, if given) the pipeline's folders, with a cleared network cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models.ladder, "LADDER_DIR", ladders)
        if weights is not None:
            mp.setattr(models.ladder, "WEIGHTS_DIR", weights)
        load_network.cache_clear()
        try:
            yield ladders
        finally:
            load_network.cache_clear()


def train_tiny(root: Path, weights: Path, *, steps: int, note: str, **config) -> Trainer:
    """Train the installed ``tiny`` ladder ``steps`` steps on 64-px Kodak crops (output in root/run)
    and export its float16 weights to weights/tiny.safetensors."""
    trainer = train(TrainConfig(ladder="tiny", data=[KODAK], out=root / "run", steps=steps, batch=4, crop=64,
                                lr=1e-3, threads=1, checkpoint_s=1e9, log_every=10, resume=False, **config))
    torch.set_num_threads(1)
    snapshot = build(trainer.ladder)
    snapshot.load_state_dict(trainer.net.state_dict())
    export(snapshot, trainer.ladder, weights / "tiny.safetensors", note=note)
    return trainer
