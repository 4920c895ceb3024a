"""Training crops: every image decoded once into memory, random crops after.

Decoding JPEG/PNG dominates a naive loader on two CPU cores; keeping the
decoded uint8 arrays in memory (680 training images ≈ 0.5 GB) makes a batch a
matter of slicing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from eval.images import BadImageError, list_images, load_rgb8


class TrainingError(ValueError):
    """Unusable training data or settings; the message is one line."""


class CropSampler:
    """Random ``crop``×``crop`` patches with random flips, from images in memory.

    ``scales`` (LO, HI): each patch is the image seen at a random scale, log-uniform in
    that range (a window of ``crop / scale`` px resampled to ``crop`` with Lanczos), so a
    network trained on small images also sees the smoother, oversampled content of
    high-resolution photographs (scales above 1) or denser detail (below 1).  A window
    never exceeds the image: on a small image the scale is clipped from below.

    Policy: an unreadable image (see ``eval.images.load_rgb8``) stops training with a
    one-line error naming it, unless ``skip_bad`` is set (``clic train
    --skip-bad-images``): then it is skipped with one line each.  Images smaller than
    the crop are skipped silently (they are valid, just too small).
    """

    def __init__(self, folders: list[Path], crop: int, seed: int = 0, skip_bad: bool = False,
                 scales: tuple[float, float] = (1.0, 1.0)):
        if not 0 < scales[0] <= scales[1]:
            raise TrainingError(f"--scales must be two factors 0 < LO <= HI, got {scales}")
        paths = [p for folder in folders for p in list_images(folder)]
        self.images: list[np.ndarray] = []
        for path in tqdm(paths, desc="loading training images", unit="img", disable=None):
            try:
                image = load_rgb8(path)
            except BadImageError as exc:
                if not skip_bad:
                    raise BadImageError(f"{exc} (or train with --skip-bad-images)") from None
                tqdm.write(f"skipped: {exc}")
                continue
            if min(image.shape[:2]) >= crop:
                self.images.append(image)
        if not self.images:
            raise TrainingError(f"no training image of at least {crop}×{crop} px in {', '.join(map(str, folders))}")
        self.crop = crop
        self.log_scales = np.log(scales)
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        """A B×3×crop×crop float batch in [0, 1]."""
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i, k in enumerate(self.rng.integers(len(self.images), size=size)):
            image = self.images[k]
            lo, hi = self.log_scales  # one scale draws nothing, so a seed gives the crops it always gave
            scale = np.exp(self.rng.uniform(lo, hi) if lo < hi else lo)
            side = min(max(round(self.crop / scale), 1), *image.shape[:2])
            y = self.rng.integers(image.shape[0] - side + 1)
            x = self.rng.integers(image.shape[1] - side + 1)
            patch = image[y : y + side, x : x + side]
            if side != self.crop:
                patch = np.asarray(Image.fromarray(patch).resize((self.crop, self.crop), Image.Resampling.LANCZOS))
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)
