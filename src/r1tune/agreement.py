"""Inter-rater agreement, shared by human evaluation (`eval/human.py`) and annotation import
(`data/label_studio.py`): Cohen's kappa (two raters), Fleiss' kappa (any fixed number of raters) and
Krippendorff's alpha with any distance, which handles free text (distance = 1 - similarity) and units
rated by different numbers of annotators.

Written with numpy instead of pulling in statsmodels/krippendorff for three formulas; each is pinned
against hand-computed values in tests/test_agreement.py and tests/eval/test_stats.py.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from r1tune.errors import R1TuneError


class AgreementInputError(R1TuneError, ValueError):
    """Ratings that agreement cannot be computed on (mismatched lengths, too few raters)."""


def cohen_kappa(a: Sequence[int], b: Sequence[int], categories: Sequence[int],
                weights: str | None = None) -> float:
    """Cohen's kappa of two raters on the same items. ``weights="quadratic"`` credits near misses on an
    ordinal scale (a 4 vs 5 disagrees less than 1 vs 5). Returns nan when agreement by chance is total."""
    if len(a) != len(b) or not a:
        raise AgreementInputError(f"Cohen's kappa needs two equal, non-empty rating lists, got {len(a)} and {len(b)}")
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
        raise AgreementInputError(f"weights must be None or 'quadratic', got {weights!r}")
    denominator = (w * expected).sum()
    return float(1 - (w * observed).sum() / denominator) if denominator > 0 else float("nan")


def fleiss_kappa(ratings: Sequence[Sequence[int]], categories: Sequence[int]) -> float:
    """Fleiss' kappa: ``ratings[item]`` holds every rater's category for that item (same count per item)."""
    if not ratings:
        raise AgreementInputError("Fleiss' kappa needs at least one rated item")
    m = len(ratings[0])
    if m < 2 or any(len(r) != m for r in ratings):
        raise AgreementInputError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(ratings), len(categories)))
    for row, item in enumerate(ratings):
        for value in item:
            counts[row, index[value]] += 1
    p_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    p_cat = counts.sum(axis=0) / counts.sum()
    p_bar, p_e = p_item.mean(), (p_cat * p_cat).sum()
    return float((p_bar - p_e) / (1 - p_e)) if p_e < 1 else float("nan")


def krippendorff_alpha(units: Sequence[Sequence[Any]], distance: Callable[[Any, Any], float] | None = None) -> float:
    """Krippendorff's alpha: ``units[i]`` holds the values the annotators gave unit i (any number; units
    with fewer than two are not pairable and are left out). ``distance`` defaults to nominal (0 if equal,
    else 1); for free text pass ``lambda a, b: 1 - similarity(a, b)``. Returns nan when every pairable value
    is the same (no disagreement is expected, so none can be measured)."""
    distance = distance or (lambda a, b: 0.0 if a == b else 1.0)
    pairable = [list(u) for u in units if len(u) >= 2]
    if not pairable:
        raise AgreementInputError("Krippendorff's alpha needs at least one unit with two or more values")
    n = sum(len(u) for u in pairable)
    observed = 0.0
    for values in pairable:
        m = len(values)
        observed += sum(distance(a, b) for i, a in enumerate(values) for j, b in enumerate(values) if i != j) / (m - 1)
    observed /= n
    flat = [v for u in pairable for v in u]
    expected = sum(distance(a, b) for i, a in enumerate(flat) for j, b in enumerate(flat) if i != j) / (n * (n - 1))
    return float(1 - observed / expected) if expected > 0 else float("nan")


def majority(values: Sequence[Hashable]) -> tuple[Hashable, float]:
    """The most frequent value (first seen wins a tie) and the share of values that agree with it."""
    counts: dict[Hashable, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    winner = max(counts, key=lambda v: counts[v])
    return winner, counts[winner] / len(values)
