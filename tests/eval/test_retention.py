"""Reasoning retention: the probes' deterministic scoring on hand-written answers, the accuracy summary and
its paired interval on hand-computed values, and the closed-non-empty think share on hand-made outputs."""

from __future__ import annotations

import pytest

from r1tune.eval.answer_scores import reasoning_stats
from r1tune.eval.retention import ReasoningProbe, bundled_probes, is_correct, probe_selection, probe_summary
from r1tune.models.generation import Generation

NUMBER = ReasoningProbe("p", "arithmetic", "en", "17 × 23?", answer=391)
YES = ReasoningProbe("y", "logic", "en", "ceramic?", accept=(r"\byes\b",), reject=(r"\bno\b",))
SHI = ReasoningProbe("z", "logic", "zh", "陶瓷的吗？", accept=("是",), reject=("不是", "否"))


@pytest.mark.parametrize(("probe", "answer", "correct"), [
    (NUMBER, "17 × 23 = 391", True),
    (NUMBER, "The product is 391.", True),
    (NUMBER, "It is 1,391 or so", False),  # the last number is 1391
    (NUMBER, "391 is wrong, it is 390", False),
    (NUMBER, "no idea", False),
    (YES, "Yes, it is ceramic.", True),
    (YES, "No.", False),
    (YES, "I know it is ceramic, yes", True),  # "know" holds no word "no"
    (SHI, "是的，它是陶瓷的。", True),
    (SHI, "不是。", False),
    (SHI, "否", False),
])
def test_answers_are_scored_deterministically(probe, answer, correct):
    assert is_correct(probe, answer) is correct


def test_bundled_probes_cover_kinds_and_languages_and_accept_their_own_answers():
    probes = bundled_probes()
    assert len(probes) == 24 and {p.lang for p in probes} == {"en", "zh"}
    assert {p.kind for p in probes} == {"arithmetic", "units", "dates", "logic"}
    for probe in probes:
        if probe.answer is not None:
            assert is_correct(probe, f"… so the answer is {probe.answer:g}"), probe.id
    few = probe_selection(8)
    assert {p.lang for p in few} == {"en", "zh"} and len({p.kind for p in few}) == 4


def test_summary_counts_accuracy_and_the_paired_difference():
    probes = [NUMBER, YES, SHI, NUMBER]
    answers = {"base": ["391", "yes", "是", "0"], "tuned": ["391", "no", "不是", "0"]}
    summary = probe_summary(probes, answers, n_resamples=500, seed=0)
    assert summary["accuracy"] == {"base": 0.75, "tuned": 0.25}
    assert summary["delta"] == -0.5 and summary["tuned_worse"] is True
    assert summary["ci"][0] < -0.4 < summary["ci"][1] <= 0
    assert summary["by_lang"] == {"en": {"base": 2 / 3, "tuned": 1 / 3}, "zh": {"base": 1.0, "tuned": 0.0}}


def _gen(text: str, reasoning: str | None, answer: str) -> Generation:
    return Generation(text, reasoning, answer, 5, "stop", 0.1)


def test_closed_non_empty_think_share():
    from r1tune.data.records import Message, Record

    gens = [_gen("weigh it\n</think>\n\nYes", "weigh it", "Yes"),  # thinks
            _gen("\n</think>\n\nYes", "", "Yes"),  # closed but empty: stopped thinking
            _gen("still thinking", "still thinking", "")]  # never closed
    records = [Record([Message("user", "q"), Message("assistant", "Yes")])] * 3
    stats = reasoning_stats(gens, records)
    assert stats["closed_nonempty"] == pytest.approx(100 / 3) and stats["unclosed"] == pytest.approx(100 / 3)
