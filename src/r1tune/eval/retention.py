"""Reasoning retention: does the tuned model still solve what the base solved?

Think-block health on the test answers (closed and non-empty, length) is scored with every answer
(`answer_scores.reasoning_stats`). Here:
- general-reasoning probes (`eval/probes/reasoning.yaml`: arithmetic, units, dates and logic in English
  and Chinese, with verifiable answers): accuracy, and the paired difference with a bootstrap interval,
  so forgetting shows as a number with its uncertainty rather than an anecdote.
Scoring is deterministic: a number answer is right when the answer's last number equals it; other answers
by `accept`/`reject` patterns on the answer text (after the think block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ReasoningProbe:
    id: str
    kind: str
    lang: str
    question: str
    answer: float | None = None
    accept: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def bundled_probes() -> tuple[ReasoningProbe, ...]:
    raw = yaml.safe_load(resources.files("r1tune.eval").joinpath("probes/reasoning.yaml").read_text(encoding="utf-8"))
    return tuple(ReasoningProbe(id=p["id"], kind=p["kind"], lang=p["lang"], question=p["question"],
                                answer=float(p["answer"]) if "answer" in p else None,
                                accept=tuple(p.get("accept", ())), reject=tuple(p.get("reject", ()))) for p in raw)


def probe_selection(n: int) -> list[ReasoningProbe]:
    """`n` probes, alternating languages and kinds so a small `n` still covers each (stable order)."""
    probes = sorted(bundled_probes(), key=lambda p: (int(p.id.rsplit("-", 1)[1]), p.kind, p.lang))
    return probes[:n]


def is_correct(probe: ReasoningProbe, answer: str) -> bool:
    if probe.answer is not None:
        numbers = _NUMBER.findall(answer.replace(",", "").replace("，", ""))
        return bool(numbers) and abs(float(numbers[-1]) - probe.answer) < 1e-6
    accepted = any(re.search(p, answer, re.IGNORECASE) for p in probe.accept)
    return accepted and not any(re.search(p, answer, re.IGNORECASE) for p in probe.reject)


def probe_summary(probes: list[ReasoningProbe], answers: dict[str, list[str]], n_resamples: int, seed: int
                  ) -> dict[str, Any]:
    """Accuracy per variant, per kind and language, and tuned − base with its paired 95% interval."""
    from r1tune.eval.metrics import bootstrap_ci

    correct = {name: [float(is_correct(p, a)) for p, a in zip(probes, texts, strict=True)]
               for name, texts in answers.items()}
    summary: dict[str, Any] = {"n": len(probes), "accuracy": {k: sum(v) / len(v) for k, v in correct.items()},
                               "by_kind": _by(probes, correct, lambda p: p.kind),
                               "by_lang": _by(probes, correct, lambda p: p.lang)}
    if "base" in correct and probes:
        ci = bootstrap_ci(correct["tuned"], correct["base"], n_resamples=n_resamples, seed=seed)
        summary["delta"] = summary["accuracy"]["tuned"] - summary["accuracy"]["base"]
        summary["ci"] = [ci["low"], ci["high"]]
        summary["tuned_worse"] = summary["delta"] < 0
    summary["per_probe"] = {name: values for name, values in correct.items()}
    return summary


def _by(probes: list[ReasoningProbe], correct: dict[str, list[float]], key: Any) -> dict[str, dict[str, float]]:
    groups: dict[str, list[int]] = {}
    for i, probe in enumerate(probes):
        groups.setdefault(key(probe), []).append(i)
    return {group: {name: sum(values[i] for i in rows) / len(rows) for name, values in correct.items()}
            for group, rows in groups.items()}
