"""Key facts: extraction and normal forms on zh and en text, recall and invented-fact rate with
hand-computed values."""

from __future__ import annotations

import pytest

from r1tune.eval.facts import extract_facts, fact_scores

EN = ("Call 400-820-8888 or visit https://bank.example.com/cards/. Refunds take 5 to 7 business days; the fee "
      "is ¥1,000 (0.5%). Go to Cards > Freeze. Your code is CARD-2024.")
ZH = "退款需要5-7个工作日，手续费1000元，请在 设置 > 限额 中修改，客服电话４００８２０８８８８。"


def test_facts_of_an_english_reference():
    assert extract_facts(EN) == {
        ("digits", "4008208888"), ("url", "bank.example.com/cards"), ("number", "5-7 day"),
        ("number", "1000 cny"), ("number", "0.5 %"), ("path", "cards > freeze"), ("code", "CARD-2024")}


def test_facts_of_a_chinese_reference_with_full_width_digits():
    assert extract_facts(ZH) == {("number", "5-7 day"), ("number", "1000 cny"), ("path", "设置 > 限额"),
                                 ("digits", "4008208888")}


def test_the_same_fact_written_differently_is_one_fact():
    assert extract_facts("5 to 7 business days") == extract_facts("5-7 days") == {("number", "5-7 day")}
    assert extract_facts("a 24-hour line") == {("number", "24 hour")}
    assert extract_facts("email Help@Bank.com") == {("email", "help@bank.com")}
    assert extract_facts("uses the card vault", glossary=["Card Vault"]) == {("term", "card vault")}


def test_recall_and_invented_facts_by_hand():
    # The answer states 3 of the reference's 4 facts (the hotline, the days, the path) and invents a URL:
    # 4 facts stated, 1 found in neither reference nor prompt.
    answer = "客服电话4008208888，5到7个工作日退款，路径：设置 > 限额，详见 www.fake-bank.cn"
    recall, invented = fact_scores(answer, ZH, prompt="怎么退款？")
    assert recall == pytest.approx(75.0) and invented == pytest.approx(25.0)
    # a number the prompt gave is not invented
    assert fact_scores("Your order 12345678 ships today", "It ships today", "Where is order 12345678?")[1] == 0.0
    assert fact_scores("anything", "no facts here", "")[0] is None
    assert fact_scores("no facts", "ref", "prompt") == (None, 0.0)
