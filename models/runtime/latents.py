"""What every learned decoder of the runtime shares: latent shapes, the entropy bottleneck's
symbols, and the last step from synthesis output to pixels."""

from __future__ import annotations

import numpy as np
import torch

from .rans import decode_with_indexes

PAD_MULTIPLE = 64  # images are padded to this (the largest stride 16 times h_a's 4)


def latent_shapes(N: int, M: int, stride: int, height: int, width: int) -> dict:
    """The coded latents' shapes for an image of ``height`` × ``width``."""
    hp, wp = height + -height % PAD_MULTIPLE, width + -width % PAD_MULTIPLE
    return {"y": (M, hp // stride, wp // stride), "hyper": (N, hp // (4 * stride), wp // (4 * stride))}


def bottleneck_symbols(stream: bytes, shape: tuple[int, int, int], tables, medians: torch.Tensor) -> torch.Tensor:
    """An entropy bottleneck's decoded latent (float32, as CompressAI's ``decompress``): its
    symbols, one table per channel (``tables``: cdf, cdf_length, offset), plus its medians."""
    channels, height, width = shape
    indexes = torch.arange(channels).repeat_interleave(height * width).tolist()
    values = decode_with_indexes(stream, indexes, tables.cdf, tables.cdf_length, tables.offset)
    return torch.tensor(values, dtype=torch.int32).view(1, *shape).float() + medians


def to_image(x: torch.Tensor) -> np.ndarray:
    """1×3×H×W float in [0, 1] → H×W×3 uint8 (rounded)."""
    return x[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
