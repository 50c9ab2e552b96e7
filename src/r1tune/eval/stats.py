"""Statistics for the report: a perplexity-change interval (inter-rater agreement is in `r1tune.agreement`,
shared with the data stage's annotation import). Pinned against hand-computed values in
tests/eval/test_stats.py.
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
