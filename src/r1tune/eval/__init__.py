"""Eval stage: base-vs-tuned perplexity and text metrics on the test split, and the HTML report."""

from r1tune.eval.evaluate import evaluate
from r1tune.eval.report import write_report

__all__ = ["evaluate", "write_report"]
