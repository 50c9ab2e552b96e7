"""The business numbers of a served model, from the completion and feedback store: is the model getting
answers accepted and edited less, per model version and per period?

Per (model, adapter version, period):
- volume: completions served;
- acceptance rate: accepted among rated (thumbs up, or 4-5 stars);
- correction rate: completions a person corrected (a correction equal to the answer is no correction);
- human edit rate: mean normalised character edit distance (Levenshtein / longer length, rapidfuzz)
  between the served answer and its correction, over corrected completions: how much a person had to change;
- latency p50 / p95 (ms).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

Period = Literal["day", "week", "month"]
ACCEPTED_SCORE = 0.75  # thumbs up is 1.0, four stars 0.75 (see store.rating_score)


def period_of(moment: datetime, period: Period) -> str:
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "month":
        return moment.strftime("%Y-%m")
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def business_metrics(rows: list[tuple[Any, Any]], period: Period = "week") -> list[dict[str, Any]]:
    """`rows`: (completion, latest feedback or None) pairs from `FeedbackStore.completions_with_feedback`.
    One dict per (model, version, period), oldest period first."""
    groups: dict[tuple[str, str, str], list[tuple[Any, Any]]] = defaultdict(list)
    for completion, feedback in rows:
        key = (completion.model, completion.adapter_version or "-", period_of(completion.created, period))
        groups[key].append((completion, feedback))
    return [_summary(model, version, when, items)
            for (model, version, when), items in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))]


def _summary(model: str, version: str, when: str, items: list[tuple[Any, Any]]) -> dict[str, Any]:
    from rapidfuzz.distance import Levenshtein

    rated = [f for _, f in items if f is not None and f.score is not None]
    edits = [Levenshtein.normalized_distance(c.answer, f.corrected_answer) for c, f in items
             if f is not None and f.corrected_answer and f.corrected_answer.strip() != c.answer.strip()]
    latencies = sorted(c.latency_ms for c, _ in items)
    return {"model": model, "version": version, "period": when, "volume": len(items), "rated": len(rated),
            "acceptance_rate": sum(f.score >= ACCEPTED_SCORE for f in rated) / len(rated) if rated else None,
            "corrections": len(edits), "correction_rate": len(edits) / len(items),
            "human_edit_rate": sum(edits) / len(edits) if edits else None,
            "latency_p50_ms": _percentile(latencies, 0.5), "latency_p95_ms": _percentile(latencies, 0.95)}


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    import math

    return values[max(0, math.ceil(q * len(values)) - 1)]
