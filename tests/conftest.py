"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from corpus import CROPS, kodak_crop
from models.ladder import load_ladder
from models.weights import load_network
from tiny_ladder import installed, train_tiny, write_ladder


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A folder of three 128×96 Kodak crops (``corpus.CROPS``), one per test module."""
    folder = tmp_path_factory.mktemp("kodak_crops")
    for stem, (left, top) in CROPS.items():
        kodak_crop(stem, left, top, 128, 96).save(folder / f"{stem}.png")
    return folder


@pytest.fixture
def ladder_dir(tmp_path) -> Iterator[Path]:
    """An empty temp folder installed as the pipeline's ladder folder (``tiny_ladder.write_ladder`` fills it)."""
    folder = tmp_path / "ladders"
    folder.mkdir()
    with installed(folder):
        yield folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny ladder, trained 30 steps on 64-px Kodak crops, exported to float16."""
    root = tmp_path_factory.mktemp("tiny_ladder")
    ladders, weights = root / "ladders", root / "weights"
    ladders.mkdir()
    write_ladder(ladders, "tiny", 250, lambdas=[0.0009, 0.0017, 0.0032, 0.006, 0.011],
                 rates=(0.0, 1.0, 1.5, 2.0, 4.0))
    with installed(ladders):
        train_tiny(root, weights, steps=30, note="test")
        ladder = load_ladder("tiny")
        yield SimpleNamespace(ladder=ladder, weights=weights, net=load_network(ladder, weights))
