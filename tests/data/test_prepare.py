"""prepare: deterministic splits, held-out test files, duplicates, and nothing-usable errors."""

from __future__ import annotations

import json

import pytest
from helpers import product_records, write_messages_jsonl

from r1tune.config import DataConfig, SourceConfig
from r1tune.data import load_prepared, prepare, split_records
from r1tune.errors import DataError


def test_split_is_deterministic_and_order_independent():
    records = product_records(50)
    a = split_records(records, 0.1, 0.1, seed=7)
    b = split_records(list(reversed(records)), 0.1, 0.1, seed=7)
    assert [[r.id for r in part] for part in a] == [[r.id for r in part] for part in b]
    assert [len(part) for part in a] == [40, 5, 5]
    c = split_records(records, 0.1, 0.1, seed=8)
    assert [r.id for r in c[2]] != [r.id for r in a[2]]


def test_prepare_writes_splits_report_and_quarantine(tmp_path):
    path = write_messages_jsonl(tmp_path / "d.jsonl", product_records(20) + product_records(3))  # 3 duplicates
    with path.open("a") as fh:
        fh.write("{not json\n")
    data = prepare(DataConfig(sources=[SourceConfig(path=path)]), tmp_path / "out", seed=1)
    funnel = data.report["funnel"]
    assert funnel["read"] == 24 and funnel["usable"] == 20 and funnel["rejected"] == {"read": 1, "dedup": 3}
    assert funnel["train"] + funnel["val"] + funnel["test"] == 20
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert any(q["stage"] == "dedup" and "exact duplicate of" in q["reason"] for q in quarantined)
    reloaded = load_prepared(tmp_path / "out")
    assert [r.id for r in reloaded.test] == [r.id for r in data.test]
    assert len(data.report["sources"][str(path)]["sha256"]) == 64


def test_held_out_test_file_replaces_the_test_split_and_leaks_are_removed(tmp_path):
    train_path = write_messages_jsonl(tmp_path / "train.jsonl", product_records(20))
    test_path = write_messages_jsonl(tmp_path / "test.jsonl", product_records(25)[18:])  # 2 overlap
    cfg = DataConfig(sources=[SourceConfig(path=train_path)], test_sources=[SourceConfig(path=test_path)])
    data = prepare(cfg, tmp_path / "out", seed=1)
    assert len(data.test) == 5 and len(data.train) + len(data.val) == 20
    assert data.report["funnel"]["rejected"] == {"dedup": 2}


def test_nothing_usable_is_an_error_with_examples(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": []}\n')
    with pytest.raises(DataError, match=r"no usable records .*d.jsonl:1: `messages` must be a non-empty list"):
        prepare(DataConfig(sources=[SourceConfig(path=path)]), tmp_path / "out", seed=1)
