"""Per-slice results from a fixture with known per-intent scores: means per slice, worst slice first,
single-valued dimensions left out, and the slice a gate would check."""

from __future__ import annotations

import math

import pytest

from r1tune.artifacts import EvalMetrics, ModelScores
from r1tune.data.records import Message, Record
from r1tune.eval.slices import slice_keys, slice_scores, worst_slice


def _record(intent: str, question: str, answer: str, source: str) -> Record:
    return Record([Message("user", question), Message("assistant", answer)], source=source, meta={"intent": intent})


RECORDS = [
    _record("refund", "How long is a refund?", "5-7 business days.", "faq_en.jsonl:1"),
    _record("refund", "退款要多久？", "退款需要5到7个工作日，请耐心等待。", "faq_zh.jsonl:1"),
    _record("cards", "How do I freeze my card?", "Open the app and go to Cards > Freeze, then confirm the "
            "freeze with your PIN.", "faq_en.jsonl:2"),
    _record("cards", "如何冻结卡片？", "打开手机银行，进入 卡片 > 冻结，输入密码确认即可完成冻结操作，"
            "冻结后可随时解冻。", "faq_zh.jsonl:2"),
]
# Per-example key-fact recall: refunds improve, cards collapse.
BASE = [{"key_fact_recall": 0.0, "rougeL": 10.0}, {"key_fact_recall": 50.0, "rougeL": 20.0},
        {"key_fact_recall": 100.0, "rougeL": 30.0}, {"key_fact_recall": 100.0, "rougeL": 40.0}]
TUNED = [{"key_fact_recall": 100.0, "rougeL": 50.0}, {"key_fact_recall": 100.0, "rougeL": 60.0},
         {"key_fact_recall": 0.0, "rougeL": 70.0}, {"key_fact_recall": 50.0, "rougeL": 80.0}]


def test_slice_keys_name_label_language_source_and_length():
    keys = slice_keys(RECORDS, "intent")
    assert keys["intent"] == ["refund", "refund", "cards", "cards"]
    assert keys["language"] == ["en", "zh", "en", "zh"]
    assert keys["source"] == ["faq_en.jsonl", "faq_zh.jsonl", "faq_en.jsonl", "faq_zh.jsonl"]
    assert keys["length"][0].startswith("short") and keys["length"][2].startswith("long")
    # `meta.label` is used when the split had no stratification key; a dimension with one value is dropped
    same = [Record(r.messages, source="one.jsonl:1", meta={"label": r.meta["intent"]}) for r in RECORDS]
    assert "label" in slice_keys(same, None) and "source" not in slice_keys(same, None)


def test_slice_means_by_hand_with_the_worst_slice_first():
    rows = slice_scores({"intent": ["refund", "refund", "cards", "cards"]}, TUNED, BASE)
    assert [(r.value, r.n) for r in rows] == [("cards", 2), ("refund", 2)]  # cards lost 75 points: first
    cards, refund = rows
    assert cards.base == {"key_fact_recall": 100.0, "rougeL": 35.0}
    assert cards.tuned == {"key_fact_recall": 25.0, "rougeL": 75.0}
    assert cards.delta == {"key_fact_recall": -75.0, "rougeL": 40.0}
    assert refund.delta["key_fact_recall"] == pytest.approx(75.0)
    # perplexity per slice from summed answer-token NLL: refund rows (2 + 4 nats over 1 + 1 tokens) -> e^3
    nll = {"tuned": [(2.0, 1), (4.0, 1), (1.0, 2), (1.0, 2)], "base": [(3.0, 1), (3.0, 1), (2.0, 2), (2.0, 2)]}
    with_ppl = {r.value: r for r in slice_scores({"intent": ["refund", "refund", "cards", "cards"]}, TUNED, BASE, nll)}
    assert with_ppl["refund"].tuned["perplexity"] == pytest.approx(math.exp(3.0))
    assert with_ppl["cards"].base["perplexity"] == pytest.approx(math.exp(1.0))
    # no base: tuned means only, lowest first
    alone = slice_scores({"intent": ["refund", "refund", "cards", "cards"]}, TUNED, None)
    assert [r.value for r in alone] == ["cards", "refund"] and alone[0].delta == {}


def test_worst_slice_for_a_gate():
    scores = ModelScores(perplexity=2.0, answer_nll=0.7, answer_tokens=10, rouge1=0, rouge2=0, rougeL=0, bleu=0,
                         chrf=0, exact_match=0, token_f1=0, n=4)
    metrics = EvalMetrics(n_examples=4, headline_decoding="greedy", decoding={}, batch_size=4, tuned=scores,
                          base=scores, slices=slice_scores(slice_keys(RECORDS, "intent"), TUNED, BASE))
    # the one long answer (the card freeze steps) lost its only fact: -100, worse than intent=cards (-75)
    assert [(s.dimension, s.value[:4], s.delta["key_fact_recall"]) for s in metrics.slices[:3]] == [
        ("length", "long", -100.0), ("intent", "card", -75.0), ("length", "medi", -50.0)]
    worst = worst_slice(metrics)
    assert (worst.dimension, worst.delta["key_fact_recall"]) == ("length", -100.0)
    assert worst_slice(metrics, "rougeL").delta["rougeL"] == pytest.approx(40.0)  # the least improved slice
    assert worst_slice(metrics.model_copy(update={"slices": []})) is None
