"""The completion/feedback store (SQLite in WAL mode, and PostgreSQL) and its export to SFT records and\npreference pairs."""

from __future__ import annotations

import json
import sqlite3

import pytest

from r1tune.data.records import read_jsonl
from r1tune.serve.store import FeedbackStore, UnknownCompletion, export_feedback, rating_score


def _log(store, cid, answer, prompt="Describe the blue mug"):
    store.log_completion(id=cid, model="shop", adapter="shop", adapter_version="abc123",
                         messages=[{"role": "user", "content": prompt}], reasoning=None, answer=answer,
                         finish_reason="stop", prompt_tokens=5, completion_tokens=7, latency_ms=12.0, ttft_ms=3.0,
                         guards={}, api_key=None)


def test_sqlite_store_uses_wal_and_rejects_unknown_completions(tmp_path):
    db = tmp_path / "fb.db"
    store = FeedbackStore(f"sqlite:///{db}")
    _log(store, "c1", "A mug.")
    with pytest.raises(UnknownCompletion):
        store.add_feedback("nope", "up", None, [])
    assert store.add_feedback("c1", "up", None, ["tone"]) == 1
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT rating, score, tags FROM feedback").fetchone() == ("up", 1.0, '["tone"]')


def test_feedback_is_committed_and_unknown_completions_refused_on_every_backend(store_url):
    store = FeedbackStore(store_url)
    _log(store, "c1", "A mug.", prompt="描述这个蓝色杯子")
    with pytest.raises(UnknownCompletion):
        store.add_feedback("nope", "up", None, [])
    first = store.add_feedback("c1", "up", None, ["tone", "长度"])
    second = store.add_feedback("c1", 2, "A blue ceramic mug.", [])
    store.close()
    reopened = FeedbackStore(store_url)  # a new connection sees exactly what was acknowledged
    assert second > first and reopened.counts() == {"completions": 1, "feedback": 2}
    [(completion, latest)] = reopened.rated_completions()
    assert completion.messages == [{"role": "user", "content": "描述这个蓝色杯子"}]
    assert (latest.rating, latest.score, latest.corrected_answer) == ("2", 0.25, "A blue ceramic mug.")
    reopened.close()


def test_bad_database_urls_name_the_problem_and_hide_the_password(tcp_port):
    from r1tune.errors import R1TuneError

    cases = {
        f"postgresql+psycopg://shop:s3cret@127.0.0.1:{tcp_port}/feedback": "cannot connect",  # nothing listens
        "postgresql+pg8000://shop:s3cret@127.0.0.1/feedback": "driver 'pg8000' is not installed",
        "not a url": "cannot open",
    }
    for url, expected in cases.items():
        with pytest.raises(R1TuneError) as caught:
            FeedbackStore(url)
        message = str(caught.value)
        assert expected in message and "s3cret" not in message, message


def test_rating_scales_share_one_score():
    assert [rating_score(r) for r in ("down", 1, 3, 5, "up", None)] == [0.0, 0.0, 0.5, 1.0, 1.0, None]


def test_export_corrections_and_preference_pairs(store_url, tmp_path):
    store = FeedbackStore(store_url)
    _log(store, "c1", "A mug.")
    _log(store, "c2", "The blue mug is a ceramic classic for your morning coffee.")
    _log(store, "c3", "Other prompt answer", prompt="Describe the red scarf")
    store.add_feedback("c1", "down", "A blue ceramic mug that keeps coffee warm.", ["too short"])
    store.add_feedback("c2", 5, None, [])
    store.add_feedback("c3", 3, None, [])  # rated alone: no pair
    store.add_feedback("c3", 4, None, [])  # the latest feedback per completion counts
    result = export_feedback(store, tmp_path / "out")
    sft = list(read_jsonl(result.sft_path))
    assert len(sft) == 1 and sft[0].answer.content == "A blue ceramic mug that keeps coffee warm."
    assert sft[0].messages[0].content == "Describe the blue mug" and sft[0].meta["completion_id"] == "c1"
    pairs = [json.loads(line) for line in result.preferences_path.read_text().splitlines()]
    chosen_rejected = {(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}
    assert chosen_rejected == {
        ("A blue ceramic mug that keeps coffee warm.", "A mug."),  # correction vs the answer it corrects
        ("The blue mug is a ceramic classic for your morning coffee.", "A mug."),  # 5 stars vs thumbs down
    }
    assert all(p["prompt"] == [{"role": "user", "content": "Describe the blue mug"}] for p in pairs)
    assert (result.sft, result.preferences) == (1, 2)
