"""Reasoning traces for trace-less training records, so tuning teaches the domain *and* keeps R1 thinking.

For every training record without `reasoning`, the teacher (an endpoint, or the base model itself:
self-distillation) answers the record's prompt `k` times with its think block. A sample is kept when its
think block is closed and not empty and its final answer agrees with the record's reference answer
(`exact` after normalising, or ROUGE-L of at least `min_rouge_l`); the record then trains that reasoning
followed by its own reference answer. A record none of whose samples agrees keeps training as before
(`train.reasoning` decides) and is listed with the reason in `data/traces_quarantine.jsonl`.
`r1tune traces RUN` rewrites the run's `data/train.jsonl` (the trace-less file kept as
`train.no_traces.jsonl`, so a re-run starts from it) and writes `data/traces.json`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r1tune.data.records import Message, Record, read_jsonl, write_json_lines, write_jsonl
from r1tune.eval.metrics import rouge_l
from r1tune.models.decoding import THINK_CLOSE, split_reasoning
from r1tune.teacher.client import TeacherReply

Ask = Callable[[list[list[dict[str, str]]], int], list[list[TeacherReply]]]


@dataclasses.dataclass(frozen=True)
class TraceSettings:
    samples: int = 4
    check: str = "rougeL"  # or "exact"
    min_rouge_l: float = 0.5


def agrees(candidate: str, reference: str, settings: TraceSettings) -> bool:
    if settings.check == "exact":
        return _normalised(candidate) == _normalised(reference)
    if not candidate.strip() or not reference.strip():
        return False
    return rouge_l(candidate, reference)["f"] >= settings.min_rouge_l


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def split_reply(reply: TeacherReply) -> tuple[str | None, str]:
    """(reasoning, answer): the endpoint's separate reasoning field, else a `<think>` block in the content;
    reasoning is None when the teacher closed no think block."""
    if reply.reasoning is not None:
        return reply.reasoning, reply.content
    if THINK_CLOSE not in reply.content:
        return None, reply.content
    reasoning, answer = split_reasoning(reply.content.split("<think>", 1)[-1], think=True)
    return reasoning, answer


def add_traces(records: list[Record], ask: Ask, settings: TraceSettings) -> tuple[list[Record], list[dict[str, Any]]]:
    """Records with a kept trace (in order), and the quarantine rows of trace attempts that failed."""
    todo = [i for i, r in enumerate(records) if not r.answer.reasoning]
    conversations = [[m.to_dict() for m in records[i].prompt_messages] for i in todo]
    replies = ask(conversations, settings.samples) if todo else []
    references = [records[i].answer.content for i in todo]
    verdicts = _judge(ask, replies, references) if settings.check == "judge" else None
    out, quarantine = list(records), []
    for row, (i, samples) in enumerate(zip(todo, replies, strict=True)):
        judged = verdicts[row] if verdicts is not None else None
        trace, reason = _pick(samples, references[row], settings, judged)
        if trace is None:
            quarantine.append({"id": records[i].id, "reason": reason, "answers": [s.content[:500] for s in samples]})
            continue
        answer = records[i].answer
        out[i] = dataclasses.replace(records[i], messages=[*records[i].prompt_messages,
                                                            Message(answer.role, answer.content, trace.strip())])
    return out, quarantine


def judge_messages(answer: str, reference: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": "Do these two answers state the same facts and reach the same conclusion? "
             f"Reply YES or NO only.\n\nReference answer:\n{reference}\n\nCandidate answer:\n{answer}"}]


def _judge(ask: Ask, replies: list[list[TeacherReply]], references: list[str]) -> list[list[bool]]:
    """The teacher's verdict on every sample that closed a non-empty think block (others: False, unasked)."""
    asked = [(row, k, split_reply(s)[1]) for row, samples in enumerate(replies) for k, s in enumerate(samples)
             if (split_reply(s)[0] or "").strip()]
    answers = ask([judge_messages(answer, references[row]) for row, _, answer in asked], 1) if asked else []
    verdicts = [[False] * len(samples) for samples in replies]
    for (row, k, _), (reply, *_) in zip(asked, answers, strict=True):
        verdicts[row][k] = reply.content.strip().upper().startswith(("YES", "是"))
    return verdicts


def _pick(samples: list[TeacherReply], reference: str, settings: TraceSettings,
          judged: list[bool] | None = None) -> tuple[str | None, str]:
    reasons = []
    for k, sample in enumerate(samples):
        reasoning, answer = split_reply(sample)
        if reasoning is None:
            reasons.append("no </think>")
        elif not reasoning.strip():
            reasons.append("empty reasoning")
        elif not (judged[k] if judged is not None else agrees(answer, reference, settings)):
            reasons.append("answer disagrees with the reference" + (" (judge)" if judged is not None else ""))
        else:
            return reasoning, ""
    return None, f"none of {len(samples)} samples kept: " + ", ".join(sorted(set(reasons)))


def trace_run_data(data_dir: Path, ask: Ask, settings: TraceSettings,
                   ledger: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Add traces to `data_dir/train.jsonl` (from the trace-less original on a re-run); returns the summary
    also written to `data_dir/traces.json`."""
    train, original = data_dir / "train.jsonl", data_dir / "train.no_traces.jsonl"
    if not original.is_file():
        shutil.copyfile(train, original)  # train.jsonl stays whole until the traced file replaces it
    records = list(read_jsonl(original))
    traced, quarantine = add_traces(records, ask, settings)
    tmp = train.with_suffix(".tmp")
    write_jsonl(traced, tmp)
    tmp.replace(train)
    write_json_lines(quarantine, data_dir / "traces_quarantine.jsonl")
    had = sum(bool(r.answer.reasoning) for r in records)
    summary = {"records": len(records), "had_reasoning": had, "traced": sum(bool(r.answer.reasoning) for r in traced) - had,
               "quarantined": len(quarantine), "settings": dataclasses.asdict(settings),
               "teacher": ledger() if ledger else {}}
    (data_dir / "traces.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def traces_for_run(run: Any) -> dict[str, Any]:
    """`r1tune traces RUN`: the configured teacher (`teacher.source`) traces the run's training records."""
    from r1tune.teacher.jobs import open_teacher

    cfg = run.load_config()
    teacher_cfg = cfg.teacher
    settings = TraceSettings(teacher_cfg.trace_samples, teacher_cfg.trace_check, teacher_cfg.trace_min_rouge_l)
    with open_teacher(cfg, run.data / "teacher_usage.json") as teacher:
        return trace_run_data(run.data, teacher.ask, settings, teacher.usage)
