"""Data checks that speak up: unfilled template placeholders (LLaMA-Factory's identity.json) are flagged,
quarantined or filled; preference pairs say what happens to `rejected`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tune.config import DataConfig, SourceConfig
from r1tune.data import prepare
from r1tune.data.placeholders import find_placeholders

_CANDIDATES = [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
PEER = next((c for c in _CANDIDATES if c.is_dir()), _CANDIDATES[0]) / "peer-datasets" / "llamafactory"
needs_peer = pytest.mark.skipif(not (PEER / "identity.json").is_file(), reason="peer datasets not on this machine")


def test_placeholder_shapes():
    text = "I am {{name}} by {{ author }}; hi ${user}, {greeting}! Call <AGENT_NAME> at %s. Keep [PHONE]."
    assert find_placeholders([text]) == ["{{name}}", "{{ author }}", "${user}", "{greeting}", "<AGENT_NAME>", "%s"]
    assert find_placeholders(['{"name": "x"}', "a {b c} d", "100% sure", "[PERSON] called"]) == []


@needs_peer
def test_identity_json_placeholders_are_flagged_quarantined_or_filled(tmp_path):
    source = SourceConfig(path=PEER / "identity.json")
    flagged = prepare(DataConfig(sources=[source]), tmp_path / "flag", seed=0).report
    n = flagged.funnel.flagged["placeholders"]
    assert n >= 80 and flagged.funnel.usable == flagged.funnel.read  # kept, but counted
    assert any(w.startswith(f"{n} record(s) contain unfilled template placeholders") for w in flagged.warnings)
    rows = [json.loads(line) for line in (tmp_path / "flag" / "quarantine.jsonl").read_text().splitlines()]
    assert rows[0]["action"] == "flagged" and "{{name}}" in rows[0]["reason"]

    filled = prepare(DataConfig(sources=[source], clean={"terms": {"{{name}}": "Acme Assistant",
                                                                   "{{author}}": "Acme Bank"}}),
                     tmp_path / "fill", seed=0)
    assert filled.report.funnel.flagged == {} and "Acme Bank" in filled.train[0].answer.content


def test_quarantine_mode_drops_only_the_templated_records(tmp_path):
    rows = [{"instruction": f"q{i}", "output": f"Answer number {i} is plain."} for i in range(6)]
    rows.append({"instruction": "who are you", "output": "I am {{name}}."})
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = prepare(DataConfig(sources=[SourceConfig(path=path)], clean={"placeholders": "quarantine"}),
                     tmp_path / "out", seed=0).report
    assert report.funnel.rejected == {"placeholders": 1} and report.funnel.usable == 6
    assert report.reasons["rejected:placeholders"] == {"unfilled template placeholder(s) {{name}}": 1}


@needs_peer
def test_preference_pairs_say_what_happens_to_rejected(tmp_path):
    report = prepare(DataConfig(sources=[SourceConfig(path=PEER / "dataset_info.json", dataset="dpo_en_demo")]),
                     tmp_path / "out", seed=0).report
    n = report.funnel.flagged["preference"]
    assert n > 0
    assert f"{n} record(s) are preference pairs: under train.stage: sft (the default) only the `chosen` answer trains" in " ".join(report.warnings)
