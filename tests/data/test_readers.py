"""Readers: each record shape, the peer project's real files, and every kind of broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tune.config import SourceConfig
from r1tune.data import Quarantine, read_source
from r1tune.errors import DataError

PEER = Path(__file__).resolve().parents[2].parent / "shared" / "peer-datasets" / "llamafactory"


def _read(path: Path, **kwargs):
    quarantine = Quarantine()
    return list(read_source(SourceConfig(path=path, **kwargs), quarantine)), quarantine


def test_messages_jsonl_with_reasoning(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A", "reasoning": "R"}]}) + "\n")
    records, quarantine = _read(path)
    assert len(records) == 1 and not quarantine
    assert records[0].answer.reasoning == "R" and records[0].source == f"{path}:1"


def test_malformed_jsonl_lines_are_quarantined_with_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})
    path.write_text("\n".join([
        good,
        '{"messages": [{"role": "user", "content": "Q"}',  # truncated JSON
        json.dumps({"messages": [{"role": "user", "content": "Q"}]}),  # no answer
        json.dumps({"messages": [{"role": "robot", "content": "Q"}, {"role": "assistant", "content": "A"}]}),
        json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": " "}]}),
        good.replace('"Q"', '"Q2"'),
    ]) + "\n")
    records, quarantine = _read(path)
    assert [r.source for r in records] == [f"{path}:1", f"{path}:6"]  # nothing accepted is lost
    reasons = {item.source: item.reason for item in quarantine.items}
    assert "invalid JSON" in reasons[f"{path}:2"]
    assert "last message must be the assistant" in reasons[f"{path}:3"]
    assert "messages[0].role is 'robot'; allowed: system, user, assistant" in reasons[f"{path}:4"]
    assert "assistant answer is empty" in reasons[f"{path}:5"]


def test_alpaca_peer_files_load_unchanged():
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json"):
        records, quarantine = _read(PEER / name)
        raw = json.loads((PEER / name).read_text(encoding="utf-8"))
        assert len(records) + len(quarantine) == len(raw) and len(records) > 0.95 * len(raw)
        first = raw[0]
        expected_prompt = first["instruction"] + (f"\n\n{first['input']}" if first.get("input") else "")
        assert records[0].messages[-2].content == expected_prompt
        assert records[0].answer.content == first["output"]


def test_csv_with_template_and_broken_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('name,price,description\nMug,12,"A mug, sturdy."\nLamp,30\nVase,5,\n"Cup",3,"Small cup"\n',
                    encoding="utf-8")
    records, quarantine = _read(path, prompt_template="Describe {{name}} ({{price}} yuan)",
                                target_column="description")
    assert [r.messages[0].content for r in records] == ["Describe Mug (12 yuan)", "Describe Cup (3 yuan)"]
    reasons = {item.source: item.reason for item in quarantine.items}
    assert "different number of fields" in reasons[f"{path}:3"]
    assert "empty answer in column 'description'" in reasons[f"{path}:4"]


def test_csv_template_naming_a_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("name,description\nMug,A mug\n")
    records, quarantine = _read(path, prompt_template="Describe {{nmae}}", target_column="description")
    assert not records and "'nmae' is undefined" in quarantine.items[0].reason
    with pytest.raises(DataError, match="target_column 'desc' is not a column"):
        _read(path, prompt_template="{{name}}", target_column="desc")
    with pytest.raises(DataError, match="needs prompt_template and target_column"):
        _read(path)


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        _read(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no records found"):
        _read(empty)
    weird = tmp_path / "weird.jsonl"
    weird.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(DataError, match="cannot tell the record format.*answer.*question"):
        _read(weird)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instruction": "a", "output": "b"},\n{"instruction": ')
    with pytest.raises(DataError, match=r"broken.json:2: invalid JSON"):
        _read(broken)
