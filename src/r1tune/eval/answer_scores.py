"""Scoring one set of generations: text overlap, format validity, key terms, key facts, reasoning health
and latency, as summary figures (0-100) and per-example rows that intervals and slices are built from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from r1tune.config import EvalConfig
from r1tune.data.records import Record
from r1tune.eval.metrics import (
    banned_term_rate,
    glossary_coverage,
    json_validity,
    length_stats,
    rouge_l,
    score_all,
)
from r1tune.eval.testset import TestSet
from r1tune.models.generation import Generation


def score_generations(gens: Sequence[Generation], test: TestSet, cfg: EvalConfig, schema: dict | None,
                      schema_error: str | None, think: bool) -> dict[str, Any]:
    """Summary metrics (0-100) and per-example scores for one model under one decoding setting."""
    from sacrebleu.metrics import CHRF

    answers = [g.answer for g in gens]
    text = score_all(answers, test.references)
    per_example = text.pop("per_example")
    chrf_metric = CHRF()
    for row, answer, ref in zip(per_example, answers, test.references, strict=True):
        row["chrf"] = chrf_metric.sentence_score(answer, [ref]).score
    summary: dict[str, Any] = dict(text)
    summary["empty_answers"] = sum(not a.strip() for a in answers)
    _format_scores(summary, per_example, answers, test.references, cfg, schema, schema_error)
    _term_scores(summary, per_example, answers, test.references, cfg)
    _fact_scores(summary, per_example, answers, test, cfg)
    summary["length"] = length_stats(answers)
    summary["mean_new_tokens"] = float(np.mean([g.num_tokens for g in gens]))
    summary["unfinished"] = sum(g.finish_reason == "length" for g in gens)
    summary["reasoning"] = reasoning_stats(gens, test.records) if think else None
    return {"summary": summary, "per_example": per_example}


def _fact_scores(summary: dict, per_example: list[dict], answers: list[str], test: TestSet, cfg: EvalConfig) -> None:
    """Key-fact recall (examples whose reference states a fact) and invented facts (every example)."""
    from r1tune.eval.facts import fact_scores

    for row, answer, reference, record in zip(per_example, answers, test.references, test.records, strict=True):
        prompt = "\n".join(m.content for m in record.prompt_messages)
        recall, row["invented_facts"] = fact_scores(answer, reference, prompt, cfg.glossary,
                                                    record.meta.get("key_facts") or ())
        if recall is not None:
            row["key_fact_recall"] = recall
    scored = [row["key_fact_recall"] for row in per_example if "key_fact_recall" in row]
    if scored:
        summary["key_fact_recall"], summary["key_fact_n"] = float(np.mean(scored)), len(scored)
    summary["invented_facts"] = float(np.mean([row["invented_facts"] for row in per_example])) if per_example else 0.0


def _format_scores(summary: dict, per_example: list[dict], answers: list[str], refs: list[str], cfg: EvalConfig,
                   schema: dict | None, schema_error: str | None) -> None:
    """With a schema every answer must match it; without one, answers whose reference is JSON must parse."""
    if cfg.json_schema is not None:
        applicable = list(range(len(answers)))
    else:
        applicable = [i for i, ref in enumerate(refs) if json_validity(ref, None)[0]]
    if not applicable:
        return
    reasons: Counter[str] = Counter()
    for i in applicable:
        ok, reason = (False, schema_error) if schema_error else json_validity(answers[i], schema)
        per_example[i]["format_valid"] = 100.0 * ok
        reasons[reason if not ok else "ok"] += 1
    summary["format_valid"] = float(np.mean([per_example[i]["format_valid"] for i in applicable]))
    summary["format_n"] = len(applicable)
    summary["format_check"] = "JSON Schema" if cfg.json_schema is not None else "parses as JSON"
    summary["format_reasons"] = dict(reasons.most_common(5))


def _term_scores(summary: dict, per_example: list[dict], answers: list[str], refs: list[str],
                 cfg: EvalConfig) -> None:
    if cfg.glossary:
        covered = []
        for row, answer, ref in zip(per_example, answers, refs, strict=True):
            required = [t for t in cfg.glossary if glossary_coverage(ref, [t]) == 1.0]
            if required:
                row["glossary_coverage"] = 100.0 * glossary_coverage(answer, required)
                covered.append(row["glossary_coverage"])
        summary["glossary_coverage"] = float(np.mean(covered)) if covered else None
        summary["glossary_n"] = len(covered)
    if cfg.banned_terms:
        for row, answer in zip(per_example, answers, strict=True):
            row["banned_rate"] = 100.0 * banned_term_rate(answer, cfg.banned_terms)
        summary["banned_rate"] = float(np.mean([row["banned_rate"] for row in per_example]))


def reasoning_stats(gens: Sequence[Generation], records: Sequence[Record]) -> dict[str, Any]:
    """Think-block health (shares 0-100) and reasoning length; ROUGE-L against reference reasoning if any.

    Well-formed: exactly one ``</think>``, no second ``<think>``, and an answer after it. A model that
    never closes its think block produced no answer at all, which is the failure to watch after tuning."""
    n = len(gens)
    closed = [g.text.count("</think>") == 1 for g in gens]
    well_formed = [c and g.text.count("<think>") <= 1 and bool(g.answer.strip()) for c, g in zip(closed, gens, strict=True)]
    reasoning = [g.reasoning or "" for g in gens]
    out: dict[str, Any] = {
        "well_formed": 100.0 * sum(well_formed) / n,
        "unclosed": 100.0 * sum("</think>" not in g.text for g in gens) / n,
        "empty": 100.0 * sum(c and not r.strip() for c, r in zip(closed, reasoning, strict=True)) / n,
        # the retention headline: the model still thinks (a closed block with something in it)
        "closed_nonempty": 100.0 * sum("</think>" in g.text and bool(r.strip()) for g, r in zip(gens, reasoning, strict=True)) / n,
        "length": length_stats(reasoning),
    }
    pairs = [(r, rec.answer.reasoning) for r, rec in zip(reasoning, records, strict=True) if rec.answer.reasoning]
    if pairs:
        out["rougeL_vs_reference"] = float(np.mean([100 * rouge_l(p, ref)["f"] for p, ref in pairs]))
        out["reference_n"] = len(pairs)
    return out


def latency_stats(batched: Sequence[Generation], single: Sequence[Generation]) -> dict[str, Any]:
    """Time to first token and tokens/s, batched (throughput at eval.batch_size) and one prompt at a time
    (what a single chat user waits). Rates use each answer's own finish time inside its batch."""

    def rates(gens: Sequence[Generation]) -> list[float]:
        return [g.num_tokens / g.finish_seconds for g in gens if g.finish_seconds > 0]

    out: dict[str, Any] = {}
    if batched:
        ttft = [g.first_token_seconds for g in batched]
        total_seconds = sum(g.seconds for g in batched)
        out["batched"] = {
            "ttft_mean": float(np.mean(ttft)), "ttft_p90": float(np.percentile(ttft, 90)),
            "throughput_tokens_per_s": sum(g.num_tokens for g in batched) / total_seconds if total_seconds else 0.0,
            "tokens_per_s": float(np.mean(rates(batched))) if rates(batched) else 0.0,
        }
    if single:
        ttft = [g.first_token_seconds for g in single]
        out["single"] = {"n": len(single), "ttft_mean": float(np.mean(ttft)), "ttft_p90": float(np.percentile(ttft, 90)),
                         "tokens_per_s": float(np.mean(rates(single))) if rates(single) else 0.0}
    return out

