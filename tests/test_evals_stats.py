"""The report's statistics against values worked out by hand or from published tables."""

import math

import pytest

from harness.evals.stats import binomial_two_sided_p, pass_at_k, pass_hat_k, paired_count, wilson_interval


@pytest.mark.parametrize(
    "s,n,low,high",
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (8, 10, 0.4902, 0.9433), (10, 10, 0.7225, 1.0), (1, 1, 0.2065, 1.0)],
)
def test_wilson_interval_known_values(s, n, low, high):
    lo, hi = wilson_interval(s, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_rejects_impossible_counts_and_handles_no_data():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 contain a success when only 2 fail
    # pass@k equals the plain average when k == 1, for any n.
    assert pass_at_k(7, 4, 1) == pytest.approx(4 / 7)


def test_pass_hat_k():
    assert pass_hat_k(10, 3, 2) == pytest.approx(3 / 45)
    assert pass_hat_k(5, 5, 5) == 1.0
    assert pass_hat_k(5, 4, 5) == 0.0
    with pytest.raises(ValueError):
        pass_hat_k(3, 1, 4)


def test_sign_test_and_mcnemar():
    assert binomial_two_sided_p(8, 2) == pytest.approx(112 / 1024)
    assert binomial_two_sided_p(0, 6) == pytest.approx(2 / 64)
    assert binomial_two_sided_p(3, 3) == 1.0
    assert binomial_two_sided_p(0, 0) == 1.0
    a = {("t1", 0): True, ("t2", 0): True, ("t3", 0): False, ("t4", 0): True, ("t5", 0): False}
    b = {("t1", 0): False, ("t2", 0): True, ("t3", 0): False, ("t4", 0): False, ("t9", 0): True}
    count = paired_count(a, b)
    assert (count.a_only, count.b_only, count.both, count.neither) == (2, 0, 1, 1)
    assert count.p_value == pytest.approx(0.5)
    assert math.isclose(paired_count({}, {}).p_value, 1.0)
