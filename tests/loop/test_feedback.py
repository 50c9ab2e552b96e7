"""The loop's feedback files: only the adapter's feedback since the live version, corrections as DPO pairs
(or plain records under `sft`), a held-out share never trained, lone thumbs as KTO rows under `kto`, and
every file readable by the data stage with the meaning it was written with. Also: the store refuses
corrections that teach nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from r1tune.config import LoopConfig, SourceConfig
from r1tune.data.quarantine import Quarantine
from r1tune.data.readers import read_source
from r1tune.data.records import read_jsonl
from r1tune.loop.feedback import HELD_OUT_FILE, collect_feedback
from r1tune.serve.store import FeedbackRefused, FeedbackStore


def _store(tmp_path) -> FeedbackStore:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    for i in range(10):
        store.log_completion(id=f"c{i}", model="shop", adapter="shop" if i < 9 else "clinic", adapter_version="v",
                             messages=[{"role": "user", "content": f"Can I return item {i}?"}], reasoning=None,
                             answer=f"Maybe, item {i}.", finish_reason="stop", prompt_tokens=5, completion_tokens=4,
                             latency_ms=10.0, ttft_ms=2.0, guards={}, api_key=None)
    for i in range(6):  # corrections on c0..c5, one on another adapter's answer (c9)
        store.add_feedback(f"c{i}", "down", f"Yes, within 30 days (item {i}).", [])
    store.add_feedback("c9", "down", "Not ours.", [])
    store.add_feedback("c6", "up", None, [])
    store.add_feedback("c7", "down", None, [])
    return store


def _read(path, fmt):
    quarantine = Quarantine()
    return list(read_source(SourceConfig(path=path, format=fmt), quarantine))


def test_dpo_feedback_pairs_corrections_with_the_answers_they_replaced(tmp_path):
    store = _store(tmp_path)
    found = collect_feedback(store, LoopConfig(adapter="shop", holdout_share=0.34), datetime(2000, 1, 1, tzinfo=timezone.utc),
                             tmp_path / "fb", seed=1)
    assert (found.corrections, found.heldout, found.pairs, found.records, found.thumbs) == (6, 2, 4, 0, 0)
    [source] = found.sources
    pairs = _read(source["path"], source["format"])
    assert len(pairs) == 4 and all(p.meta["rejected"].startswith("Maybe, item") for p in pairs)
    held = list(read_jsonl(tmp_path / "fb" / HELD_OUT_FILE))
    trained_prompts = {p.messages[0].content for p in pairs}
    assert len(held) == 2 and not trained_prompts & {h.messages[0].content for h in held}
    assert "Not ours." not in (tmp_path / "fb" / "export" / "sft.jsonl").read_text()


def test_sft_and_kto_feedback(tmp_path):
    store = _store(tmp_path)
    since = datetime(2000, 1, 1, tzinfo=timezone.utc)
    sft = collect_feedback(store, LoopConfig(adapter="shop", stage="sft"), since, tmp_path / "sft", seed=1)
    assert (sft.pairs, sft.records, sft.heldout) == (0, 5, 1)
    assert [s["format"] for s in sft.sources] == ["messages"]
    kto = collect_feedback(store, LoopConfig(adapter="shop", stage="kto"), since, tmp_path / "kto", seed=1)
    assert (kto.pairs, kto.thumbs) == (5, 2)
    thumbs = _read(next(s["path"] for s in kto.sources if s["format"] == "sharegpt"), "sharegpt")
    assert sorted((r.answer.content, r.meta["kto_label"]) for r in thumbs) == [("Maybe, item 6.", True),
                                                                               ("Maybe, item 7.", False)]


def test_only_feedback_since_the_live_version_counts(tmp_path):
    store = _store(tmp_path)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    found = collect_feedback(store, LoopConfig(adapter="shop"), later, tmp_path / "fb", seed=1)
    assert found.usable == 0 and found.sources == []


@pytest.mark.parametrize(("correction", "message"), [
    ("   ", "corrected_answer is empty"), ("Maybe, item 0.", "identical to the served answer")])
def test_corrections_that_teach_nothing_are_refused(tmp_path, correction, message):
    store = _store(tmp_path)
    with pytest.raises(FeedbackRefused, match=message):
        store.add_feedback("c0", None, correction, [])
