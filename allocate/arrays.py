"""The RD table as padded per-image arrays: N images (sorted by name) × K candidate slots."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocate.table import BadTableError

PAD_BYTES = 2**53  # exact in float64 and never affordable


@dataclass(frozen=True, eq=False)
class RDArrays:
    """Per-image candidate arrays; slots beyond an image's candidates are padding (row -1, bytes PAD, costs inf)."""

    images: np.ndarray  # (N,) image names, sorted
    row: np.ndarray  # (N, K) position of the candidate's row in the table, -1 for padding
    bytes: np.ndarray  # (N, K) int64
    sse: np.ndarray  # (N, K) float64
    msssim_loss: np.ndarray  # (N, K) float64: pixels · (1 − msssim), the pixel-weighted MS-SSIM shortfall (NaN: not measured)
    pixels: np.ndarray  # (N,) int64

    @property
    def valid(self) -> np.ndarray:
        return self.row >= 0

    @property
    def total_pixels(self) -> int:
        return int(self.pixels.sum())

    def cost(self, objective: str) -> np.ndarray:
        """The per-candidate cost to minimise: 'sse' or 'msssim' (the MS-SSIM shortfall)."""
        if objective == "sse":
            return self.sse
        if objective == "msssim":
            return self.msssim_loss
        raise ValueError(f"objective must be 'sse' or 'msssim', got {objective!r}")

    def take(self, values: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """values[i, slot[i]] for every image i."""
        return values[np.arange(len(slot)), slot]


def rd_arrays(table: pd.DataFrame) -> RDArrays:
    """Group the table's rows by image into padded arrays (the table is assumed to satisfy the RD schema)."""
    if len(table) == 0:
        raise BadTableError("the RD table is empty")
    codes, images = pd.factorize(table["image"], sort=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(images))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sorted_codes = codes[order]
    slot = np.arange(len(order)) - starts[sorted_codes]
    shape = (len(images), int(counts.max()))

    def spread(values: np.ndarray, fill: float | int) -> np.ndarray:
        out = np.full(shape, fill, dtype=values.dtype)
        out[sorted_codes, slot] = values[order]
        return out

    bytes_ = table["bytes"].to_numpy(dtype=np.int64)
    sse = table["sse"].to_numpy(dtype=float)
    msssim = table["msssim"].to_numpy(dtype=float)
    pixels = table["pixels"].to_numpy(dtype=np.int64)
    if not (np.isfinite(sse).all() and not np.isinf(msssim).any()):
        raise BadTableError("the RD table has NaN or inf in sse, or inf in msssim")
    image_pixels = np.zeros(len(images), dtype=np.int64)
    image_pixels[codes] = pixels
    return RDArrays(
        images=np.asarray(images, dtype=object),
        row=spread(np.arange(len(table), dtype=np.int64), -1),
        bytes=spread(bytes_, PAD_BYTES),
        sse=spread(sse, np.inf),
        msssim_loss=spread(pixels * (1.0 - msssim), np.inf),
        pixels=image_pixels,
    )
