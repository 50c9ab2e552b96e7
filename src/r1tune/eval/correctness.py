"""Reference-guided correctness: the judge grades each answer on its own against the reference answer.

Pairwise preference says which answer a judge likes more; a bank needs to know whether an answer is right.
Each base and tuned answer is graded correct (100), partially correct (50) or wrong (0) with a one-line
reason; one answer per prompt, so there is no position to be biased by. The per-example grades become the
`judge_correctness` metric (paired interval, slices). Grades the judge gave no usable reply for are counted
as invalid and left out of the mean; a failing judge stops after three errors in a row and the grades so far
are kept, like the pairwise judge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from r1tune.data.records import Record, write_json_lines
from r1tune.eval.judge import JudgeError, ask_each, reply_field

GRADE_SCORES = {"correct": 100.0, "partially": 50.0, "wrong": 0.0}

CORRECTNESS_TEMPLATE = """You are a strict domain expert. Grade the answer against the reference answer.
correct: it states the reference's key facts (numbers, dates, phone numbers, steps, conditions) and says
nothing false. partially: some key facts are right, others are missing. wrong: a key fact is wrong or made
up, or the answer does not address the request. Style and length do not matter.

[Request]
{prompt}

[Reference answer]
{reference}

[Answer to grade]
{answer}

Reply with one JSON object and nothing else: {{"grade": "correct" or "partially" or "wrong", "reason": "<one sentence>"}}"""

def correctness_prompt(prompt: str, reference: str, answer: str) -> str:
    return CORRECTNESS_TEMPLATE.format(prompt=prompt, reference=reference, answer=answer or "(empty)")


def parse_grade(text: str) -> tuple[str | None, str]:
    """("correct" | "partially" | "wrong" | None, reason) from a judge's reply; reasoning is ignored."""
    return reply_field(text, "grade", tuple(GRADE_SCORES))


def grade_answers(call: Callable[[list[str]], list[str]], records: Sequence[Record],
                  answers: dict[str, Sequence[str]], n: int, out_path: Path) -> tuple[dict[str, Any], dict]:
    """Grade every model's answers to the first `n` records; writes one JSONL row per record.

    Returns (summary, scores) where scores[model] lists a 0-100 score or None per record."""
    scores: dict[str, list[float | None]] = {name: [None] * len(records) for name in answers}
    asked = [(r.prompt_messages[-1].content, r.answer.content) for r in records[:n]]
    batches = [[correctness_prompt(prompt, reference, answers[name][i]) for name in answers]
               for i, (prompt, reference) in enumerate(asked)]
    replies, status = ask_each(call, batches)
    rows: list[dict[str, Any]] = []
    for i, answer in enumerate(replies):
        if isinstance(answer, JudgeError):
            rows.append({"id": records[i].id, "error": str(answer)})
            continue
        row: dict[str, Any] = {"id": records[i].id, "prompt": asked[i][0]}
        for name, reply in zip(answers, answer, strict=True):
            grade, reason = parse_grade(reply)
            row[name] = {"grade": grade, "reason": reason}
            scores[name][i] = GRADE_SCORES.get(grade) if grade else None
        rows.append(row)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_lines(rows, out_path)
    summary = {"status": status, "n": len(rows), "errors": sum("error" in r for r in rows),
               **{name: dict(Counter(r[name]["grade"] or "invalid" for r in rows if name in r)) for name in answers}}
    return summary, scores
