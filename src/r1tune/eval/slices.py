"""Every per-example metric again per slice of the test set, so a gain on one intent cannot hide a collapse
on another.

Slices come from four dimensions: the record label the split was stratified by (`data.split.stratify_by`,
else `meta.label` when records have one), the language of prompt and reference (the data stage's
`detect_language`: zh, en or other), the source file, and the reference length (thirds of
the test set by characters). A dimension with a single value says nothing the overall row does not, so it
is left out. Slices are ordered worst first: by the change of the first metric that the slice has in
`SLICE_METRICS` (key-fact recall before ROUGE-L), turned so that "worse" sorts first whichever direction
is better.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from r1tune.artifacts import EvalMetrics, SliceScores
from r1tune.data.clean import detect_language
from r1tune.data.records import Record
from r1tune.eval.metric_info import METRICS, worse_by

# The metrics that order slices and fill the report's slice table, most telling first; metrics.json has
# every per-example metric per slice, and perplexity.
SLICE_METRICS = ("key_fact_recall", "invented_facts", "rougeL", "judge_correctness", "format_valid", "exact_match")
_PER_EXAMPLE = tuple(dict.fromkeys((*SLICE_METRICS, *(m.key for m in METRICS if m.interval))))
def slice_keys(records: Sequence[Record], label_key: str | None) -> dict[str, list[str]]:
    """Dimension -> each record's slice value, for the dimensions with more than one value."""
    key = label_key or ("label" if any("label" in r.meta for r in records) else None)
    lengths = [len(r.answer.content) for r in records]
    edges = np.percentile(lengths, [100 / 3, 200 / 3]) if lengths else [0, 0]
    dims: dict[str, list[str]] = {
        "language": [detect_language(_prompt_text(r) + r.answer.content) for r in records],
        "source": [r.source.rsplit(":", 1)[0] or "(unknown)" for r in records],
        "length": [_length_bucket(n, edges) for n in lengths],
    }
    if key:
        dims[key] = [str(r.meta.get(key, "(none)")) for r in records]
    return {dim: values for dim, values in dims.items() if len(set(values)) > 1}


def _prompt_text(record: Record) -> str:
    return "\n".join(m.content for m in record.prompt_messages)


def _length_bucket(n: int, edges: Sequence[float]) -> str:
    if n <= edges[0]:
        return f"short (≤{edges[0]:.0f} chars)"
    if n <= edges[1]:
        return f"medium (≤{edges[1]:.0f} chars)"
    return f"long (>{edges[1]:.0f} chars)"


def slice_scores(keys: dict[str, list[str]], tuned_rows: Sequence[dict], base_rows: Sequence[dict] | None,
                 nll: dict[str, Sequence[tuple[float, int]]] | None = None) -> list[SliceScores]:
    """Mean of every per-example metric per slice for tuned (and base, with the change), plus perplexity
    from `nll` (model -> per-example (summed NLL, answer tokens)); worst slice first."""
    nll = nll or {}
    out = []
    for dim, values in keys.items():
        members: dict[str, list[int]] = defaultdict(list)
        for i, value in enumerate(values):
            members[value].append(i)
        for value, rows in members.items():
            tuned = _means(tuned_rows, rows) | _perplexity(nll.get("tuned"), rows)
            base = _means(base_rows, rows) | _perplexity(nll.get("base"), rows) if base_rows is not None else {}
            delta = {k: tuned[k] - base[k] for k in tuned if k in base}
            out.append(SliceScores(dimension=dim, value=value, n=len(rows), tuned=tuned, base=base, delta=delta))
    return sorted(out, key=_badness, reverse=True)


def _perplexity(nll: Sequence[tuple[float, int]] | None, rows: list[int]) -> dict[str, float]:
    tokens = sum(nll[i][1] for i in rows) if nll else 0
    return {"perplexity": float(np.exp(sum(nll[i][0] for i in rows) / tokens))} if tokens else {}


def _means(per_example: Sequence[dict], rows: list[int]) -> dict[str, float]:
    means = {}
    for key in _PER_EXAMPLE:
        scores = [per_example[i][key] for i in rows if key in per_example[i]]
        if scores:
            means[key] = float(np.mean(scores))
    return means


def _badness(row: SliceScores) -> float:
    """How much worse the slice got on its first metric (positive = worse); with no base, how low it is."""
    for key in SLICE_METRICS:
        if key in row.delta:
            return worse_by(key, row.delta[key])
        if key in row.tuned and not row.base:
            return worse_by(key, row.tuned[key])
    return 0.0


def worst_slice(metrics: EvalMetrics, key: str = "key_fact_recall") -> SliceScores | None:
    """The slice whose `key` changed most for the worse, for a promotion gate to check beside the overall
    figures; None when the run has no base or no slice with that metric."""
    rows = [s for s in metrics.slices if key in s.delta]
    if not rows:
        return None
    return max(rows, key=lambda s: worse_by(key, s.delta[key]))
