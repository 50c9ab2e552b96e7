"""Reference-guided correctness grades: parsing, per-model scores, and a failing judge that stops without
losing the grades so far."""

from __future__ import annotations

import json

import pytest
from helpers import product_records

from r1tune.eval.correctness import correctness_prompt, grade_answers, parse_grade
from r1tune.eval.judge import JudgeError

RECORDS = product_records(4)


@pytest.mark.parametrize(("reply", "grade"), [
    ('{"grade": "correct", "reason": "states the fee"}', "correct"),
    ('<think>\nthe path is wrong\n</think>\n{"grade": "Wrong", "reason": "wrong path"}', "wrong"),
    ('```json\n{"grade": "partially", "reason": "misses the deadline"}\n```', "partially"),
    ("grade: partially, the hotline is missing", "partially"),
    ('{"grade": "excellent"}', None),
    ("no idea", None),
])
def test_parse_grade(reply, grade):
    assert parse_grade(reply)[0] == grade


def test_the_prompt_carries_request_reference_and_answer():
    text = correctness_prompt("How long?", "5-7 days", "")
    assert "[Request]\nHow long?" in text and "[Reference answer]\n5-7 days" in text and "(empty)" in text


def test_grades_become_scores_per_model_and_rows_keep_reasons(tmp_path):
    answers = {"base": ["x"] * 4, "tuned": [r.answer.content for r in RECORDS]}

    def judge(prompts):
        return [json.dumps({"grade": "correct" if "[Answer to grade]\nx" not in p else "wrong", "reason": "r"})
                for p in prompts]

    summary, scores = grade_answers(judge, RECORDS, answers, 3, tmp_path / "g.jsonl")
    assert scores == {"base": [0.0, 0.0, 0.0, None], "tuned": [100.0, 100.0, 100.0, None]}
    assert summary == {"status": "ok", "n": 3, "errors": 0, "base": {"wrong": 3}, "tuned": {"correct": 3}}
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert rows[0]["base"] == {"grade": "wrong", "reason": "r"}


def test_a_failing_judge_stops_after_three_errors_and_keeps_what_it_graded(tmp_path):
    calls = []

    def flaky(prompts):
        calls.append(len(prompts))
        if len(calls) > 1:
            raise JudgeError("cannot reach http://judge:8000/v1/chat/completions")
        return ['{"grade": "partially", "reason": "r"}'] * len(prompts)

    summary, scores = grade_answers(flaky, RECORDS, {"tuned": ["a"] * 4}, 4, tmp_path / "g.jsonl")
    assert scores["tuned"] == [50.0, None, None, None] and len(calls) == 4
    assert summary["errors"] == 3 and summary["status"].startswith("stopped after 3 failed calls in a row")
    assert summary["tuned"] == {"partially": 1}
