"""Precision/recall/F1 of the detector on labelled cases (tests and benchmarks/pii_eval.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from r1tune.data.pii.detector import PiiDetector
from r1tune.data.pii.spans import PII_TYPES


def evaluate_pii(cases: Iterable[dict[str, Any]], detector: PiiDetector | None = None) -> dict[str, dict[str, float]]:
    """Per-type precision/recall/F1 with exact (type, text) matching over `{"text", "spans"}` cases.

    A predicted span counts once against one gold span of the same type and text in the same case; a span
    with the right text but wrong type is both a false positive and a false negative.
    """
    detector = detector or PiiDetector()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for case in cases:
        gold = Counter((s["type"], s["text"]) for s in case["spans"])
        pred = Counter((s.type, s.text) for s in detector.detect(case["text"]))
        for (t, _), n in (gold & pred).items():
            tp[t] += n
        for (t, _), n in (pred - gold).items():
            fp[t] += n
        for (t, _), n in (gold - pred).items():
            fn[t] += n
    return {t: _prf(tp[t], fp[t], fn[t]) for t in PII_TYPES}


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision/recall/F1 plus raw counts; an empty denominator counts as perfect (nothing to get wrong)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}
