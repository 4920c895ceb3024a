"""Bjøntegaard deltas between two rate–distortion curves (VCEG-M33, 2001).

BD-rate: the average rate difference, in percent, of curve ``test`` against curve
``anchor`` at equal quality, over the quality range both curves cover.  BD-PSNR: the
average quality difference, in dB, at equal rate over the common log-rate range.
Each curve is fitted in log-rate, either by the original cubic polynomial (``cubic``)
or by a piecewise cubic Hermite interpolant through the points (``pchip``, the variant
later adopted by the JVET common test conditions), and integrated over the overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

Method = Literal["cubic", "pchip"]
METHODS = ("cubic", "pchip")


def _average(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: Method) -> float:
    """Mean of the curve y(x) over [lo, hi]."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    if method == "cubic":
        integral = np.polyint(np.polyfit(x, y, 3))
        return float((np.polyval(integral, hi) - np.polyval(integral, lo)) / (hi - lo))
    return float(PchipInterpolator(x, y).integrate(lo, hi) / (hi - lo))


def _check(rate: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    rate, quality = np.asarray(rate, dtype=float), np.asarray(quality, dtype=float)
    if rate.shape != quality.shape or rate.size < 4:
        raise ValueError(f"{name}: a Bjøntegaard delta needs at least 4 (rate, quality) points, got {rate.size}")
    if (rate <= 0).any() or not np.isfinite(quality).all():
        raise ValueError(f"{name}: rates must be positive and qualities finite")
    if np.unique(quality).size != quality.size or np.unique(rate).size != rate.size:
        raise ValueError(f"{name}: repeated rate or quality values")
    return rate, quality


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if lo >= hi:
        raise ValueError(f"the two curves share no {what} range")
    return lo, hi


def bd_rate(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
            test_quality: Sequence[float], method: Method = "cubic") -> float:
    """Average rate change of ``test`` against ``anchor`` at equal quality, in percent (negative: fewer bits)."""
    ra, qa = _check(anchor_rate, anchor_quality, "anchor")
    rt, qt = _check(test_rate, test_quality, "test")
    lo, hi = _overlap(qa, qt, "quality")
    delta = _average(qt, np.log(rt), lo, hi, method) - _average(qa, np.log(ra), lo, hi, method)
    return float((np.exp(delta) - 1) * 100)


def bd_psnr(anchor_rate: Sequence[float], anchor_quality: Sequence[float], test_rate: Sequence[float],
            test_quality: Sequence[float], method: Method = "cubic") -> float:
    """Average quality change of ``test`` against ``anchor`` at equal rate (dB for PSNR)."""
    ra, qa = _check(anchor_rate, anchor_quality, "anchor")
    rt, qt = _check(test_rate, test_quality, "test")
    lo, hi = _overlap(np.log(ra), np.log(rt), "rate")
    return _average(np.log(rt), qt, lo, hi, method) - _average(np.log(ra), qa, lo, hi, method)
