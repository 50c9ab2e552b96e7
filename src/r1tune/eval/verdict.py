"""The one-sentence answer to "is the tuned model better?", decided by task metrics, never by perplexity.

Perplexity rewards sounding like the reference; a tuned model can lower it while stating the wrong menu path
or inventing a phone number. So the verdict reads only the task metrics, each with its paired 95% interval:

- **worse** when a fact metric (key-fact recall, invented facts, the judge's correctness grade) moved the
  wrong way at all, or any task metric got significantly worse (its interval excludes 0 on the bad side);
- **better** when nothing got worse and at least one task metric is significantly better;
- **unclear** otherwise (too few examples, or changes inside the noise).

Perplexity is quoted beside the verdict as context and can never make it "better" on its own. The worst
slice is named when it went the other way from the overall result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from r1tune.artifacts import EvalMetrics
from r1tune.eval.metric_info import LABELS, worse_by
from r1tune.eval.slices import SLICE_METRICS

FACT_METRICS = ("key_fact_recall", "invented_facts", "judge_correctness")
TASK_METRICS = (*FACT_METRICS, "rougeL", "format_valid", "exact_match")
Outcome = Literal["better", "worse", "unclear"]


@dataclass
class Verdict:
    outcome: Outcome
    reasons: list[str] = field(default_factory=list)  # why it is not "better" (empty when it is)
    evidence: list[str] = field(default_factory=list)  # each task metric: base → tuned (change, interval)
    context: str = ""  # perplexity, quoted, not decisive
    worst_slice: str = ""


def decide(metrics: EvalMetrics) -> Verdict | None:
    """The verdict of a base-vs-tuned evaluation; None without a base to compare with."""
    if metrics.base is None:
        return None
    worse, better, evidence = [], [], []
    for key in TASK_METRICS:
        change = metrics.delta.get(key)
        if change is None or not (metrics.base.value(key) or metrics.tuned.value(key)):
            continue  # not measured on this run, or zero for both (exact match of long answers): no evidence
        interval = metrics.ci.get(key)
        significant = interval is not None and (interval.low > 0 or interval.high < 0)
        evidence.append(_describe(metrics, key, change, interval))
        if worse_by(key, change) > 0 and (key in FACT_METRICS or significant):
            worse.append(f"{LABELS[key]} got worse ({change:+.1f}{'' if significant else ', within the noise'})")
        elif worse_by(key, change) < 0 and significant:
            better.append(key)
    outcome: Outcome = "worse" if worse else "better" if better else "unclear"
    reasons = worse or ([] if better else ["no task metric changed beyond its 95% interval"])
    if not evidence:
        reasons = ["no task metric to decide on: only perplexity was measured"]
    return Verdict(outcome, reasons, evidence, _perplexity(metrics), _worst_slice(metrics, outcome))


def _describe(metrics: EvalMetrics, key: str, change: float, interval) -> str:
    base, tuned = metrics.base.value(key), metrics.tuned.value(key)
    ci = f", 95% CI {interval.low:+.1f} to {interval.high:+.1f}" if interval else ""
    return f"{LABELS[key]} {base:.1f} → {tuned:.1f} ({change:+.1f}{ci})"


def _perplexity(metrics: EvalMetrics) -> str:
    change = metrics.perplexity_change_pct()
    if change is None:
        return ""
    return f"perplexity {metrics.base.perplexity:.2f} → {metrics.tuned.perplexity:.2f} ({change:+.1f}%)"


def _worst_slice(metrics: EvalMetrics, outcome: Outcome) -> str:
    """The first (worst) slice, named when it got worse on its first metric while the whole did not."""
    for row in metrics.slices:
        key = next((k for k in SLICE_METRICS if k in row.delta), None)
        if key is None:
            continue
        if worse_by(key, row.delta[key]) > 0 and outcome != "worse":
            return (f"{row.dimension} = {row.value} ({row.n} examples): {LABELS[key]} "
                    f"{row.base[key]:.1f} → {row.tuned[key]:.1f}")
        return ""
    return ""
