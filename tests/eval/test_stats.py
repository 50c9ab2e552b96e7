"""Pinned values for the report's statistics; each expected number is worked out by hand in a comment."""

from __future__ import annotations

import math

import pytest

from r1tune.eval.metrics import MetricInputError
from r1tune.eval.stats import cohen_kappa, fleiss_kappa, perplexity_change_ci


def test_cohen_kappa_by_hand() -> None:
    # a = 1 1 2 2, b = 1 2 2 2 over categories {1, 2}: observed agreement p_o = 3/4.
    # marginals a: (1/2, 1/2), b: (1/4, 3/4) -> p_e = 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4-1/2)/(1-1/2) = 1/2
    assert cohen_kappa([1, 1, 2, 2], [1, 2, 2, 2], [1, 2]) == pytest.approx(0.5)
    assert cohen_kappa([1, 2, 3], [1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_quadratic_kappa_credits_near_misses() -> None:
    # Categories 1..3, a = 1 2 3, b = 2 2 3. Weights w = ((i-j)/2)^2: 0, 1/4 (off by one), 1 (off by two).
    # Observed (each pair 1/3): only (1,2) disagrees -> sum w*O = 1/4 * 1/3 = 1/12.
    # Marginals a: 1/3 each; b: (0, 2/3, 1/3). Expected E = a_i * b_j; sum w*E = 1/3 * sum_i sum_j w_ij b_j
    #   row i=1: 0*0 + 1/4*2/3 + 1*1/3 = 1/2; i=2: 1/4*0 + 0 + 1/4*1/3 = 1/12; i=3: 1*0 + 1/4*2/3 + 0 = 1/6
    #   -> 1/3 * (1/2 + 1/12 + 1/6) = 1/3 * 3/4 = 1/4; kappa_w = 1 - (1/12)/(1/4) = 2/3
    assert cohen_kappa([1, 2, 3], [2, 2, 3], [1, 2, 3], weights="quadratic") == pytest.approx(2 / 3)
    # Unweighted on the same data: p_o = 2/3, p_e = 1/3*0 + 1/3*2/3 + 1/3*1/3 = 1/3 -> (2/3-1/3)/(2/3) = 1/2
    assert cohen_kappa([1, 2, 3], [2, 2, 3], [1, 2, 3]) == pytest.approx(0.5)


def test_fleiss_kappa_by_hand() -> None:
    # 3 items x 3 raters, categories {1, 2}: counts per item (3,0), (0,3), (2,1).
    # P_i = (sum n_ij^2 - 3) / (3*2): (9-3)/6 = 1, 1, (4+1-3)/6 = 1/3 -> P_bar = 7/9
    # p_j = (3+0+2)/9 = 5/9, (0+3+1)/9 = 4/9 -> P_e = 25/81 + 16/81 = 41/81
    # kappa = (7/9 - 41/81) / (1 - 41/81) = (63/81 - 41/81) / (40/81) = 22/40 = 0.55
    assert fleiss_kappa([[1, 1, 1], [2, 2, 2], [1, 1, 2]], [1, 2]) == pytest.approx(0.55)


def test_kappa_bad_inputs_are_explained() -> None:
    with pytest.raises(MetricInputError, match="equal, non-empty"):
        cohen_kappa([1, 2], [1], [1, 2])
    with pytest.raises(MetricInputError, match="same number"):
        fleiss_kappa([[1, 2], [1]], [1, 2])
    assert math.isnan(cohen_kappa([3, 3], [3, 3], [1, 2, 3]))  # chance agreement is total: undefined


def test_perplexity_change_interval_is_token_weighted() -> None:
    # tuned NLL sums 2 and 4 over 1 and 3 tokens (mean 6/4), base 4 and 4 (mean 8/4):
    # change = 100 * (exp(1.5 - 2) - 1) = 100 * (exp(-0.5) - 1) = -39.35%
    ci = perplexity_change_ci([2.0, 4.0], [4.0, 4.0], [1, 3], n_resamples=200)
    assert ci["mean"] == pytest.approx(100 * (math.exp(-0.5) - 1))
    # Resampling example 2 twice gives equal sums (change 0); no resample favours the base model.
    assert ci["low"] <= ci["mean"] <= ci["high"] <= 0
    with pytest.raises(MetricInputError):
        perplexity_change_ci([1.0], [1.0, 2.0], [1, 1])
