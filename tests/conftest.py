"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus import CROPS, kodak_crop
from tiny_ladder import installed


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
