"""CompressAI's Gaussian conditional, its tables sized without ``scipy.stats``.

The tail quantile that sizes the CDF tables comes from the standard library
(``statistics.NormalDist``) instead of ``scipy.stats``, so that building tables
never imports ``scipy.stats`` (see ``models.lean_import``); a test checks that
the tables are CompressAI's, bit for bit.  Which table codes a symbol is chosen
by ``models.runtime.integer_prior``.
"""

from __future__ import annotations

import statistics

from compressai.entropy_models import GaussianConditional


class LeanGaussianConditional(GaussianConditional):
    @staticmethod
    def _standardized_quantile(quantile: float) -> float:
        return statistics.NormalDist().inv_cdf(quantile)
