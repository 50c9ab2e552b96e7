"""FAQ-shaped data, the commonest enterprise data: several paraphrased questions per intent sharing one
templated answer. Near-dedup must drop only true duplicates, every intent must train under `stratify_by`,
and what prepare did must be said in warnings."""

from __future__ import annotations

import json

import pytest

from r1tune.config import DataConfig, SourceConfig
from r1tune.data import prepare

ANSWERS = {
    "card_lost": "Please freeze the card at once in the app under Cards > Freeze, then call 95588 to order a "
                 "replacement; the new card arrives in 5 to 7 business days.",
    "transfer_limit": "The daily transfer limit is 50,000 yuan in the app; raise it under Settings > Limits "
                      "with your U-key, or visit a branch with your ID card.",
    "statement": "Monthly statements are in the app under Accounts > Statements; paper statements cost 5 yuan "
                 "each and arrive within 10 working days.",
    "fee_refund": "Annual fees are refunded automatically when you spend 6 times in the year; refunds reach "
                  "the card within 3 business days after the anniversary.",
    "password_reset": "Reset the login password under Me > Security > Reset password with a code sent to your "
                      "registered phone; the new password works at once.",
}
QUESTIONS = {
    "card_lost": ["I lost my debit card, what now?", "My card was stolen yesterday.",
                  "Can't find my bank card anywhere, help", "What should I do if my card is missing?"],
    "transfer_limit": ["How much can I transfer per day?", "Is there a daily transfer cap?",
                       "Why was my big transfer refused?", "Can I raise my transfer limit?"],
    "statement": ["Where do I get my monthly statement?", "I need a bank statement for my visa.",
                  "Can you mail me a paper statement?", "How to download statements"],
    "fee_refund": ["Why was I charged an annual fee?", "Will the card fee be refunded?",
                   "How do I avoid the yearly fee?", "When is the annual fee returned?"],
    "password_reset": ["I forgot my login password.", "How to change my app password?",
                       "Locked out of mobile banking", "Password reset steps please"],
}


def _faq(tmp_path, extra: list[dict] = ()) -> SourceConfig:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWERS[intent]}],
             "meta": {"intent": intent}} for intent, questions in QUESTIONS.items() for q in questions]
    path = tmp_path / "faq.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, *extra]), encoding="utf-8")
    return SourceConfig(path=path)


def test_paraphrases_sharing_an_answer_are_kept_and_every_intent_trains(tmp_path):
    # one true duplicate: the same question again with its answer reworded by one word
    twin = {"messages": [{"role": "user", "content": "I lost my debit card, what now?"},
                         {"role": "assistant", "content": ANSWERS["card_lost"].replace("the new card", "your new card")}],
            "meta": {"intent": "card_lost"}}
    cfg = DataConfig(sources=[_faq(tmp_path, [twin])], split={"stratify_by": "intent"}, test_ratio=0.25)
    data = prepare(cfg, tmp_path / "out", seed=0)
    assert data.report.funnel.rejected == {"near_dedup": 1}  # only the twin
    assert data.report.duplicates["compared"] == "both"
    strata = data.report.split["strata"]
    assert set(strata) == set(QUESTIONS) and all(counts["train"] >= 2 for counts in strata.values())
    assert all(counts["test"] >= 1 for counts in strata.values())
    assert data.report.warnings == []


def test_comparing_answers_alone_merges_an_intent_but_never_takes_its_training_records(tmp_path):
    cfg = DataConfig(sources=[_faq(tmp_path)], split={"stratify_by": "intent"}, test_ratio=0.25,
                     clean={"near_dup_on": "answer", "near_dup_action": "keep"})
    data = prepare(cfg, tmp_path / "out", seed=0)
    strata = data.report.split["strata"]
    # each intent is one cluster of 4 (same answer): it stays whole, and in training
    assert all(counts == {"train": 4, "val": 0, "test": 0} for counts in strata.values())
    warnings = data.report.warnings
    assert len(warnings) == 5 and all("one near-duplicate cluster, kept in training" in w for w in warnings)
    dropped = prepare(cfg.model_copy(update={"clean": cfg.clean.model_copy(update={"near_dup_action": "drop"})}),
                      tmp_path / "dropped", seed=0)
    assert dropped.report.funnel.rejected == {"near_dedup": 15}
    assert dropped.report.warnings[0].startswith("stage near_dedup dropped 75% of its records (15 of 20")
    assert "largest clusters 4 records like" in dropped.report.warnings[0]


def test_a_class_only_in_the_test_file_is_named(tmp_path):
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(json.dumps({"messages": [{"role": "user", "content": "Open an account for my kid?"},
                                                  {"role": "assistant", "content": "Bring both IDs to a branch."}],
                                     "meta": {"intent": "child_account"}}) + "\n", encoding="utf-8")
    cfg = DataConfig(sources=[_faq(tmp_path)], test_sources=[SourceConfig(path=test_file)],
                     split={"stratify_by": "intent"})
    warnings = prepare(cfg, tmp_path / "out", seed=0).report.warnings
    assert warnings == ["class 'child_account' of `intent` has no training record (0 val, 1 test)"]


def test_embedding_dedup_catches_rewordings_that_shingles_miss(tmp_path):
    pytest.importorskip("sentence_transformers", reason="the quality extra is not installed")
    # the same question reworded, with the same answer: different shingles, same meaning
    twin = {"messages": [{"role": "user", "content": "How can I freeze my lost debit card?"},
                         {"role": "assistant", "content": ANSWERS["card_lost"]}], "meta": {"intent": "card_lost"}}
    first = {"messages": [{"role": "user", "content": "How do I freeze my lost debit card?"},
                          {"role": "assistant", "content": ANSWERS["card_lost"]}], "meta": {"intent": "card_lost"}}
    source = _faq(tmp_path, [first, twin])
    shingles = prepare(DataConfig(sources=[source], split={"stratify_by": "intent"}), tmp_path / "m", seed=0)
    assert shingles.report.funnel.rejected == {}
    meaning = prepare(DataConfig(sources=[source], split={"stratify_by": "intent"},
                                 clean={"near_dup_method": "embedding"}), tmp_path / "e", seed=0)
    assert meaning.report.funnel.rejected == {"near_dedup": 1}  # only the twin: paraphrased FAQ questions stay
    assert meaning.report.duplicates["method"] == "embedding"
    quarantined = (tmp_path / "e" / "quarantine.jsonl").read_text(encoding="utf-8")
    assert "faq.jsonl:22" in quarantined and "near duplicate of" in quarantined
