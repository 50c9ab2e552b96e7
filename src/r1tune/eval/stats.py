"""Statistics for the report: a perplexity-change interval and inter-rater agreement.

Written here with numpy instead of pulling in scikit-learn/statsmodels (≈100 MB for three formulas); each
function is pinned against hand-computed values in tests/eval/test_stats.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from r1tune.eval.metrics import MetricInputError


def perplexity_change_ci(nll_tuned: Sequence[float], nll_base: Sequence[float], tokens: Sequence[int],
                         n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap over examples of the perplexity change in percent, token-weighted like perplexity
    itself: each resample recomputes exp(Σnll/Σtokens) for both models on the same examples."""
    t, b, n = (np.asarray(x, dtype=float) for x in (nll_tuned, nll_base, tokens))
    if not (t.size == b.size == n.size) or t.size == 0:
        raise MetricInputError(f"need equal, non-empty per-example lists, got {t.size}, {b.size}, {n.size}")
    if n.sum() <= 0:
        raise MetricInputError("no answer tokens to compute perplexity on")

    def change(idx: np.ndarray) -> np.ndarray:
        tokens_sum = n[idx].sum(axis=-1)
        return 100.0 * (np.exp((t[idx].sum(axis=-1) - b[idx].sum(axis=-1)) / np.maximum(tokens_sum, 1)) - 1)

    rng = np.random.default_rng(seed)
    values = np.concatenate([change(rng.integers(0, t.size, size=(min(100, n_resamples - s), t.size)))
                             for s in range(0, n_resamples, 100)])
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(change(np.arange(t.size))), "low": float(low), "high": float(high), "n": int(t.size),
            "paired": True, "n_resamples": n_resamples, "alpha": alpha, "seed": seed}


def cohen_kappa(a: Sequence[int], b: Sequence[int], categories: Sequence[int],
                weights: str | None = None) -> float:
    """Cohen's kappa of two raters on the same items. ``weights="quadratic"`` credits near misses on an
    ordinal scale (a 4 vs 5 disagrees less than 1 vs 5). Returns nan when agreement by chance is total."""
    if len(a) != len(b) or not a:
        raise MetricInputError(f"Cohen's kappa needs two equal, non-empty rating lists, got {len(a)} and {len(b)}")
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    observed = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        observed[index[x], index[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((k, k))
    if weights is None:
        w = (i != j).astype(float)
    elif weights == "quadratic":
        w = ((i - j) / max(k - 1, 1)) ** 2
    else:
        raise MetricInputError(f"weights must be None or 'quadratic', got {weights!r}")
    denominator = (w * expected).sum()
    return float(1 - (w * observed).sum() / denominator) if denominator > 0 else float("nan")


def fleiss_kappa(ratings: Sequence[Sequence[int]], categories: Sequence[int]) -> float:
    """Fleiss' kappa: ``ratings[item]`` holds every rater's category for that item (same count per item)."""
    if not ratings:
        raise MetricInputError("Fleiss' kappa needs at least one rated item")
    m = len(ratings[0])
    if m < 2 or any(len(r) != m for r in ratings):
        raise MetricInputError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(ratings), len(categories)))
    for row, item in enumerate(ratings):
        for value in item:
            counts[row, index[value]] += 1
    p_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    p_cat = counts.sum(axis=0) / counts.sum()
    p_bar, p_e = p_item.mean(), (p_cat * p_cat).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else float("nan")
