"""The learned quality filter: precision/recall on a labelled fixture, the prepare stage's quarantine and
report, the perplexity-only mode, and the errors when it cannot decide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from r1tune.config import DataConfig, QualityConfig, SourceConfig
from r1tune.data import prepare
from r1tune.data.quality import quality_filter
from r1tune.errors import ConfigError

pytest.importorskip("sentence_transformers", reason="the quality extra is not installed")
CASES = Path(__file__).with_name("quality_cases.jsonl")


def _cases() -> tuple[list[dict], list[str]]:
    rows = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]
    truth = [r["meta"]["quality"] for r in rows]
    for row in rows:
        if row["meta"]["split"] != "marked":
            del row["meta"]["quality"]  # what the user did not mark
    return rows, truth


def test_the_embedding_model_loads_offline_from_its_package(tmp_path, monkeypatch):
    from r1tune.data import embeddings

    monkeypatch.setenv("R1TUNE_HOME", str(tmp_path))
    assert embeddings._model_dir() == tmp_path / "all-MiniLM-L6-v2"
    assert (tmp_path / "all-MiniLM-L6-v2" / "modules.json").is_file()
    vectors = embeddings.embed(["The card is frozen.", "卡片已冻结。"])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_precision_and_recall_on_the_labelled_fixture():
    rows, truth = _cases()
    reasons, summary = quality_filter(rows, QualityConfig(enabled=True), None)
    judged = [i for i, r in enumerate(rows) if r["meta"]["split"] == "judge"]
    caught = {i for i in judged if reasons[i] is not None}
    bad = {i for i in judged if truth[i] == "bad"}
    precision, recall = len(caught & bad) / len(caught), len(caught & bad) / len(bad)
    print(f"quality filter on {len(judged)} judged records: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.9  # measured 0.966 and 0.933
    assert summary["decided_by"] == "classifier" and summary["marked_good"] == summary["marked_bad"] == 20
    assert 0 <= summary["cv_precision"] <= 1 and summary["cv_folds"] == 5
    marked_bad = [i for i, r in enumerate(rows) if r["meta"].get("quality") == "bad"]
    assert all(reasons[i] == "marked bad in meta.quality" for i in marked_bad)


def test_prepare_quarantines_with_the_score_and_reports_the_filter(tmp_path):
    rows, _ = _cases()
    path = tmp_path / "support.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    steps = ["nfkc", "whitespace", "length_filter", "exact_dedup"]  # the fixture repeats answers on purpose
    cfg = DataConfig(sources=[SourceConfig(path=path)], clean={"steps": steps, "quality": {"enabled": True}})
    report = prepare(cfg, tmp_path / "out", seed=0).report
    assert report.funnel.rejected["quality"] == report.quality["dropped"] > 40
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert any(r.startswith("quality score 0.") and "below clean.quality.threshold 0.5" in r for r in reasons)
    assert any(w.startswith("stage quality dropped") for w in report.warnings)


def test_perplexity_alone_decides_without_marked_records():
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(4)]
    nll = np.log(np.array([2.0, 50.0, 3.0, 400.0]))
    cfg = QualityConfig(enabled=True, use_perplexity=True, max_answer_perplexity=20)
    reasons, summary = quality_filter(rows, cfg, lambda records: nll)
    assert reasons[0] is None and reasons[1] == "answer perplexity 50.0 above clean.quality.max_answer_perplexity 20"
    assert summary["dropped"] == 2 and summary["decided_by"] == "perplexity"


def test_it_says_what_it_needs():
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
             "meta": {"quality": "good"}}]
    with pytest.raises(ConfigError, match=r"at least 5 records marked good and 5 marked bad .*\(found 1 and 0\)"):
        quality_filter(rows, QualityConfig(enabled=True), None)
    with pytest.raises(ConfigError, match="use_perplexity needs the base model's scores"):
        quality_filter(rows, QualityConfig(enabled=True, use_perplexity=True), None)
