"""Bjøntegaard deltas against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from eval.bjontegaard import METHODS, bd_psnr, bd_rate

RATES = [0.065, 0.103, 0.144, 0.151, 0.286]
PSNR = [24.85, 25.96, 26.86, 26.98, 28.87]


@pytest.mark.parametrize("method", METHODS)
def test_a_curve_with_every_rate_scaled_by_0_9_saves_exactly_10_percent(method):
    assert bd_rate(RATES, PSNR, [0.9 * r for r in RATES], PSNR, method) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_a_curve_half_a_db_higher_at_every_rate_gains_half_a_db(method):
    assert bd_psnr(RATES, PSNR, RATES, [p + 0.5 for p in PSNR], method) == pytest.approx(0.5, abs=1e-9)


def test_a_linear_curve_in_log_rate_gives_the_closed_form_delta():
    """PSNR = 10·log(rate) + c (both fits exact): a +1 dB shift is a rate factor exp(-0.1), i.e. -9.516 %."""
    rates = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    anchor, test = 10 * np.log(rates) + 30, 10 * np.log(rates) + 31
    for method in METHODS:
        assert bd_rate(rates, anchor, rates, test, method) == pytest.approx((np.exp(-0.1) - 1) * 100, abs=1e-9)


def test_curves_without_overlap_or_with_too_few_points_are_refused():
    with pytest.raises(ValueError, match="share no quality range"):
        bd_rate(RATES, PSNR, RATES, [p + 10 for p in PSNR])
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(RATES[:3], PSNR[:3], RATES, PSNR)
