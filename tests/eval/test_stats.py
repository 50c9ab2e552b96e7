"""Pinned values for the report's perplexity interval; each expected number is worked out by hand in a comment."""

from __future__ import annotations

import math

import pytest

from r1tune.eval.metrics import MetricInputError
from r1tune.eval.stats import perplexity_change_ci


def test_perplexity_change_interval_is_token_weighted() -> None:
    # tuned NLL sums 2 and 4 over 1 and 3 tokens (mean 6/4), base 4 and 4 (mean 8/4):
    # change = 100 * (exp(1.5 - 2) - 1) = 100 * (exp(-0.5) - 1) = -39.35%
    ci = perplexity_change_ci([2.0, 4.0], [4.0, 4.0], [1, 3], n_resamples=200)
    assert ci["mean"] == pytest.approx(100 * (math.exp(-0.5) - 1))
    # Resampling example 2 twice gives equal sums (change 0); no resample favours the base model.
    assert ci["low"] <= ci["mean"] <= ci["high"] <= 0
    with pytest.raises(MetricInputError):
        perplexity_change_ci([1.0], [1.0, 2.0], [1, 1])
