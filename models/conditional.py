"""CompressAI's Gaussian conditional with a one-call table lookup.

``GaussianConditional.build_indexes`` picks each latent's CDF table (the first
scale-table entry not below its predicted scale) with one comparison pass per
table entry: 63 passes over the whole latent, twice per image (anchor and
non-anchor halves of the checkerboard), in the encoder and in the decoder.
``torch.bucketize`` finds the same index in one pass.  The indexes are the same
integers, so streams and decoded images do not change.

The tail quantile that sizes the tables comes from the standard library
(``statistics.NormalDist``) instead of ``scipy.stats``, so that building
tables never imports ``scipy.stats`` (see ``models.lean_import``); a test
checks that the tables are CompressAI's, bit for bit.
"""

from __future__ import annotations

import statistics

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor


class GaussianConditionalBucketized(GaussianConditional):
    @staticmethod
    def _standardized_quantile(quantile: float) -> float:
        return statistics.NormalDist().inv_cdf(quantile)

    def build_indexes(self, scales: Tensor) -> Tensor:
        """Index of the scale-table entry each scale codes with: how many of the table's
        first n − 1 entries are below it (CompressAI: n − 1 minus how many are at or above)."""
        scales = self.lower_bound_scale(scales)
        table = self.scale_table[:-1].to(scales.dtype)
        return torch.bucketize(scales, table, right=False).int()
