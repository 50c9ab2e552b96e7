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


def test_hand_listed_key_facts_count_with_the_extracted_ones():
    reference = "Freeze the card in the app. It takes 5 to 7 business days."  # 1 extracted fact: 5-7 day
    listed = ["Cards > Freeze", "5-7 business days", "the fee is waived"]
    # states the path (extracted from the listed text), the days (same fact as the reference's) and not the fee:
    # hits = 1 extracted + 2 listed of 1 + 3 facts
    answer = "Open Cards > Freeze; it takes 5-7 days."
    recall, invented = fact_scores(answer, reference, "How do I freeze?", listed=listed)
    assert recall == pytest.approx(75.0) and invented == 0.0  # the listed path is known, not invented
    # a listed fact without extractable facts is stated by containment, case and spacing ignored
    assert fact_scores("THE  FEE IS WAIVED.", "no facts", "", listed=["the fee is waived"]) == (100.0, 0.0)
    assert fact_scores("nothing", "no facts", "", listed=["  "]) == (None, 0.0)  # blank entries are no facts
