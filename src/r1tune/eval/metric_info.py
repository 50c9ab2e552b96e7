"""What each reported metric means, defined once: its label, which direction is better, a one-line note,
the digits it is shown with, whether base-vs-tuned gets a paired bootstrap interval, and whether the
terminal summary shows it. The report, `r1tune compare`, the CLI and the evaluator all read this table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class MetricInfo:
    key: str  # as stored in metrics.json (scales: 0-100 unless the note says otherwise)
    label: str
    better: Better
    note: str
    digits: int
    interval: bool = False  # per-example scores that get a paired bootstrap interval
    in_terminal: bool = False  # shown in the base-vs-tuned table the CLI prints


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("key_fact_recall", "key-fact recall", "higher",
               "reference facts (numbers with units, phones, URLs, codes, UI paths, glossary terms) the answer "
               "states (%)", 1, True, True),
    MetricInfo("invented_facts", "invented facts", "lower",
               "answer facts found in neither the reference nor the prompt (%)", 1, True, True),
    MetricInfo("judge_correctness", "judge: correct answers", "higher",
               "the judge's grade against the reference: correct 100, partially 50, wrong 0 (mean)", 1, True, True),
    MetricInfo("perplexity", "perplexity on test answers", "lower",
               "how surprised the model is by the reference answers", 2, in_terminal=True),
    MetricInfo("rougeL", "ROUGE-L", "higher", "longest common subsequence with the reference (0–100)", 1, True, True),
    MetricInfo("rouge1", "ROUGE-1", "higher", "word overlap (characters for Chinese), 0–100", 1, True, True),
    MetricInfo("rouge2", "ROUGE-2", "higher", "two-token overlap, 0–100", 1, True),
    MetricInfo("bleu", "BLEU", "higher", "n-gram precision (sacrebleu; CI from sentence BLEU), 0–100", 1, True, True),
    MetricInfo("chrf", "chrF", "higher", "character n-gram F-score (CI from sentence chrF), 0–100", 1, True),
    MetricInfo("exact_match", "exact match", "higher", "answers equal to the reference after normalising (%)", 1,
               True),
    MetricInfo("token_f1", "token F1", "higher", "bag-of-tokens F1 with the reference, for short answers (0–100)",
               1, True),
    MetricInfo("format_valid", "format validity", "higher", "answers that pass the format check (%)", 1, True),
    MetricInfo("glossary_coverage", "glossary coverage", "higher",
               "domain terms of the reference the answer also uses (%)", 1, True),
    MetricInfo("banned_rate", "banned terms", "lower", "answers using a banned term (%)", 1, True),
    MetricInfo("mean_new_tokens", "answer length (tokens)", "none", "mean generated tokens (model tokenizer)", 1,
               in_terminal=True),
    MetricInfo("unfinished", "answers cut by the token limit", "lower", "answers that hit eval.max_new_tokens", 0),
    MetricInfo("empty_answers", "empty answers (scored 0)", "lower", "no answer text, e.g. reasoning never closed", 0),
)
INTERVAL_METRICS = tuple(m for m in METRICS if m.interval)
LABELS = {m.key: m.label for m in METRICS}
BETTER = {m.key: m.better for m in METRICS}


def worse_by(key: str, change: float) -> float:
    """How far `change` (tuned minus base, or a bare score) goes the wrong way for metric `key`:
    positive means worse, whichever direction the metric counts as better."""
    return change if BETTER.get(key) == "lower" else -change
