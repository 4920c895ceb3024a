"""The interface every candidate codec of the encode grid satisfies."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Codec(Protocol):
    """One candidate: a codec at one fixed setting.

    ``name`` is the candidate's unique id (e.g. ``avif-q30``, ``learned-psnr-q2``),
    ``family`` groups the settings of one codec, ``rate_label`` is the setting
    for people.  ``fingerprint`` changes whenever the bytes it produces may
    change (library version, options, weights), so cached cells of an older
    codec are never reused.  ``encode`` maps an H×W×3 uint8 RGB image to the bytes of one
    complete file; ``decode`` maps those bytes back to H×W×3 uint8 RGB.
    """

    name: str
    family: str
    rate_label: str
    fingerprint: str

    def encode(self, image: np.ndarray) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray: ...
