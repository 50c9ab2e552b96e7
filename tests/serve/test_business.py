"""Business numbers from the store, checked against hand-counted values: per version and ISO week, volume,
acceptance among rated, corrections (an unchanged "correction" does not count), the normalised edit
distance of corrections, and latency percentiles; and `r1tune feedback stats` prints them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.serve.business import business_metrics, period_of
from r1tune.serve.store import FeedbackStore

WEEK_48 = datetime(2026, 11, 24, 10, tzinfo=timezone.utc)  # ISO 2026-W48
WEEK_49 = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)


def _log(store, cid, version, when, answer, latency):
    store.log_completion(id=cid, created=when, model="shop", adapter="shop", adapter_version=version,
                         messages=[{"role": "user", "content": cid}], reasoning=None, answer=answer,
                         finish_reason="stop", prompt_tokens=5, completion_tokens=7, latency_ms=latency,
                         ttft_ms=1.0, guards={}, api_key=None)


@pytest.fixture
def store(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    _log(store, "a", "v1", WEEK_48, "abcd", 100.0)
    _log(store, "b", "v1", WEEK_48, "same", 200.0)
    _log(store, "c", "v1", WEEK_48, "hello", 300.0)
    _log(store, "d", "v2", WEEK_49, "0123456789", 50.0)
    store.add_feedback("a", "down", "abcf", [])  # corrected: 1 of 4 characters changed
    store.add_feedback("b", "up", None, [])  # approved as it is (a correction equal to the answer is refused)
    store.add_feedback("d", 4, None, [])  # four stars: accepted
    yield store
    store.close()


def test_numbers_per_version_and_week(store):
    v1, v2 = business_metrics(store.completions_with_feedback(), "week")
    assert (v1["period"], v1["version"], v1["volume"], v1["rated"]) == ("2026-W48", "v1", 3, 2)
    assert v1["acceptance_rate"] == 0.5 and v1["corrections"] == 1 and v1["correction_rate"] == pytest.approx(1 / 3)
    assert v1["human_edit_rate"] == pytest.approx(0.25)
    assert (v1["latency_p50_ms"], v1["latency_p95_ms"]) == (200.0, 300.0)
    assert (v2["period"], v2["version"], v2["acceptance_rate"], v2["human_edit_rate"]) == ("2026-W49", "v2", 1.0, None)
    assert period_of(WEEK_49, "month") == "2026-12" and period_of(WEEK_49, "day") == "2026-12-01"


def test_feedback_stats_command_prints_the_table(store, tmp_path, monkeypatch):
    from rich.console import Console

    monkeypatch.setattr("r1tune.cli_feedback.out", Console(width=200))  # the whole table on one line per row
    config = tmp_path / "r1tune.yaml"
    config.write_text("project: {name: shop}\ndata: {sources: [{path: d.jsonl}]}\n")
    (tmp_path / "d.jsonl").write_text("")
    result = CliRunner().invoke(app, ["feedback", "stats", str(config), "--database-url",
                                      f"sqlite:///{tmp_path / 'fb.db'}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2026-W48" in result.output and "50%" in result.output and "25%" in result.output
    bad = CliRunner().invoke(app, ["feedback", "stats", str(config), "--period", "year"])
    assert bad.exit_code != 0 and "--period must be day, week or month" in str(bad.exception)
