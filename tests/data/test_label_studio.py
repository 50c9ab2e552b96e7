"""Label Studio round trip: records out as tasks with predictions, two annotators who disagree on part of the
tasks back in; every annotation kept, agreement per field (kappa, Krippendorff's alpha), the agreement
rule, adjudicated answers; a task nobody annotated is quarantined with its reason."""

from __future__ import annotations

import json

import pytest

from r1tune.config import SourceConfig
from r1tune.data import Quarantine, read_source
from r1tune.data.label_studio import annotation_agreement, export_tasks
from r1tune.data.records import Message, Record

RECORDS = [Record([Message("user", q), Message("assistant", a)], source=f"faq.jsonl:{i + 1}", meta={"lang": "en"})
           for i, (q, a) in enumerate([
               ("How do I freeze my card?", "Go to Cards > Freeze."),
               ("What is the transfer limit?", "50,000 yuan a day."),
               ("How long is a refund?", "5 to 7 business days."),
               ("Where is my statement?", "Accounts > Statements."),
           ])]
INTENTS = ["cards", "limits", "refund", "statements"]


def _annotation(annotator: int, intent: str, answer: str, ground_truth: bool = False) -> dict:
    return {"completed_by": annotator, "ground_truth": ground_truth, "result": [
        {"from_name": "intent", "to_name": "prompt", "type": "choices", "value": {"choices": [intent]}},
        {"from_name": "answer", "to_name": "prompt", "type": "textarea", "value": {"text": [answer]}}]}


@pytest.fixture
def exported(tmp_path):
    """What Label Studio gives back after two annotators worked on r1tune's export."""
    tasks = json.loads(export_tasks(RECORDS, tmp_path / "tasks.json").read_text(encoding="utf-8"))
    assert tasks[0]["data"]["prompt"] == "How do I freeze my card?"
    assert tasks[0]["predictions"][0]["result"][0]["value"]["text"] == ["Go to Cards > Freeze."]
    answers = [r.answer.content for r in RECORDS]
    tasks[0]["annotations"] = [_annotation(1, "cards", answers[0]), _annotation(2, "cards", answers[0])]
    tasks[1]["annotations"] = [_annotation(1, "limits", "The limit is 50,000 yuan a day."),
                               _annotation(2, "limits", "50,000 yuan per day in the app.")]
    tasks[2]["annotations"] = [_annotation(1, "refund", answers[2]), _annotation(2, "cards", answers[2])]
    tasks[3]["annotations"] = [_annotation(1, "statements", "Under Accounts > Statements."),
                               _annotation(2, "refund", "No idea.", ground_truth=False),
                               _annotation(3, "statements", "Accounts > Statements, as PDF.", ground_truth=True)]
    tasks.append({"data": {"prompt": "Nobody answered this one"}, "annotations": []})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def _read(path, **kwargs):
    quarantine = Quarantine()
    records = list(read_source(SourceConfig(path=path, format="label_studio", **kwargs), quarantine))
    return records, quarantine


def test_every_annotation_is_kept_and_answers_are_adjudicated(exported):
    records, quarantine = _read(exported)
    assert len(records) == 4 and [i.reason for i in quarantine.items] == [
        f"{exported}:#4: Label Studio task has no (uncancelled) annotation"]
    first, second, third, fourth = records
    assert first.meta["intent"] == "cards" and first.meta["agreement"] == 1.0 and first.meta["annotators"] == 2
    assert first.meta["lang"] == "en" and first.meta["record_id"] == RECORDS[0].id  # exported meta comes back
    assert len(second.meta["annotations"]) == 2 and second.meta["agreement"] < 1.0  # two wordings of one answer
    assert third.meta["intent"] == "refund" and third.meta["agreement"] == 0.5  # a tie: the first annotator's
    assert fourth.answer.content == "Accounts > Statements, as PDF."  # the ground-truth annotation wins
    assert fourth.meta["intent"] == "statements"  # majority of three


def test_the_agreement_rule_quarantines_disagreeing_tasks_with_the_reason(exported):
    records, quarantine = _read(exported, min_agreement=0.8)
    assert [r.meta["intent"] for r in records] == ["cards"]
    reasons = [i.reason for i in quarantine.items]
    assert f"{exported}:#2: annotators disagree on intent: 'refund' / 'cards' (agreement 0.50 < " \
           "source.min_agreement 0.8)" in reasons
    assert any(r.startswith(f"{exported}:#1: annotators disagree on answer:") for r in reasons)


def test_agreement_per_field_over_the_export(exported):
    tasks = json.loads(exported.read_text(encoding="utf-8"))
    agreement = annotation_agreement(tasks)
    assert agreement["intent"]["tasks"] == 4 and agreement["intent"]["kind"] == "choices"
    # tasks 0-3 intents: (cards,cards), (limits,limits), (refund,cards), (statements,refund,statements):
    # nominal alpha from the pairable values; 3 annotators on one task, so no single kappa applies
    assert -1.0 <= agreement["intent"]["krippendorff_alpha"] < 1.0 and "cohen_kappa" not in agreement["intent"]
    assert agreement["answer"]["kind"] == "text" and agreement["answer"]["krippendorff_alpha"] < 1.0
    two = annotation_agreement(tasks[:3])
    # (cards,cards), (limits,limits), (refund,cards): p_o = 2/3; marginals a: c,l,r = 1,1,1 /3, b: c,l = 2,1 /3
    # p_e = 1/3*2/3 + 1/3*1/3 + 0 = 1/3 -> kappa = (2/3 - 1/3) / (2/3) = 0.5
    assert two["intent"]["cohen_kappa"] == pytest.approx(0.5)


def test_labels_commands_export_and_measure(exported, tmp_path):
    from typer.testing import CliRunner

    from r1tune.cli import app

    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    result = CliRunner().invoke(app, ["labels", "export", str(records), "--out", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))) == 4
    result = CliRunner().invoke(app, ["labels", "agreement", str(exported)])
    assert result.exit_code == 0 and "intent" in result.output and "Krippendorff" in result.output
    (tmp_path / "bad.json").write_text("{}")
    result = CliRunner().invoke(app, ["labels", "agreement", str(tmp_path / "bad.json")])
    assert result.exit_code != 0 and "JSON list of tasks, got dict" in str(result.exception)  # main() prints it


def test_prepare_reports_agreement_per_field_and_warns_when_it_is_low(exported, tmp_path):
    from r1tune.config import DataConfig
    from r1tune.data import prepare

    report = prepare(DataConfig(sources=[SourceConfig(path=exported, format="label_studio")]), tmp_path / "out",
                     seed=0).report
    fields = report.annotation[str(exported)]
    assert set(fields) == {"intent", "answer"} and fields["intent"]["tasks"] == 4
    low = [w for w in report.warnings if w.startswith("annotators of export.json agree little on")]
    assert low and all("Krippendorff's alpha" in w for w in low)
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in RECORDS), encoding="utf-8")
    assert prepare(DataConfig(sources=[SourceConfig(path=plain)]), tmp_path / "p", seed=0).report.annotation == {}
