"""Synthetic records from documents, against a stub teacher on 127.0.0.1: grounded pairs are kept with their
provenance; an answer with a fact the chunk lacks, a near-duplicate question, a question that leaks the test
set and a reply without JSON lines are quarantined with the reason; paraphrase and back-translation add
variants; the review sheet (CSV and XLSX) and a Label Studio export come back as accepted, edited records."""

from __future__ import annotations

import csv
import json

import pytest
from fastapi import FastAPI, Request
from openpyxl import load_workbook
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.data.records import read_jsonl
from r1tune.errors import ConfigError, DataError
from r1tune.serve.server import serving_in_thread
from r1tune.teacher.synth import grounding_problem, parse_pairs

KEY = "synth-key-0123456789"
DOC = """# Shop policy

## Returns
You can return any item within 45 days of delivery, for any reason at all. The return label is free and you
print it at https://shop.example/returns before you bring the parcel to any post office near you.

## Warranty
The warranty lasts 2 years from the day of delivery and covers manufacturing defects of every product we
sell, but it does not cover damage from accidents, misuse or normal wear of the product over time.

## Contact
Our support team answers by phone and by e-mail on working days, and we reply to every message we receive.
"""
REPLIES = {
    "Returns": [("How long is the return window?", "You can return any item within 45 days of delivery."),
                ("How long is the return window??", "Within 45 days of delivery."),
                ("Is the label free?", "Yes, the return label is free, and refunds take 3 days."),
                ("Where do I print the return label?", "You print it at https://shop.example/returns.")],
    "Warranty": [("How long does the warranty last?", "The warranty lasts 2 years from the day of delivery."),
                 ("What does the warranty cover?", "It covers manufacturing defects of every product we sell.")],
}


def _stub() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        prompt = (await request.json())["messages"][-1]["content"]
        if "Excerpt:" in prompt:
            pairs = REPLIES["Returns"] if "45 days" in prompt else REPLIES["Warranty"] if "warranty lasts" in prompt else None
            content = ("\n".join(json.dumps({"question": q, "answer": a}) for q, a in pairs) if pairs
                       else "Sorry, I cannot help with that.")
        elif prompt.startswith("Reword"):
            content = "Please tell me: " + prompt.rsplit("\n\n", 1)[-1].lower()
        else:  # a translation leg
            text = prompt.rsplit("\n\n", 1)[-1]
            content = f"[zh] {text}" if "into Chinese" in prompt else "In other words, " + text.removeprefix("[zh] ")
        return {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 40}}

    return app


@pytest.fixture
def project(tmp_path, tiny_llama_dir, monkeypatch):
    from helpers import write_project

    monkeypatch.setenv("R1TUNE_TEACHER_API_KEY", KEY)
    monkeypatch.setenv("R1TUNE_HOME", str(tmp_path / "home"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "policy.md").write_text(DOC)
    (tmp_path / "test.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "What does the warranty cover?"},
        {"role": "assistant", "content": "Manufacturing defects."}]}) + "\n")
    with serving_in_thread(_stub()) as url:
        config = write_project(tmp_path, tiny_llama_dir, extra=(
            f"teacher: {{base_url: '{url}/v1', model: stub-teacher, synth_documents: [docs], synth_per_chunk: 4, "
            "synth_augment: [paraphrase, back_translation]}\n"))
        text = config.read_text().replace("  test_ratio: 0.2\n", "  test_ratio: 0.2\n  test_sources: [{path: test.jsonl}]\n")
        config.write_text(text)
        yield config


def test_synth_keeps_grounded_pairs_and_says_why_the_rest_went(project):
    result = CliRunner().invoke(app, ["synth", str(project), "data.chunking.min_tokens=4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = project.parent / "synth"
    records = list(read_jsonl(out / "records.jsonl"))
    generated = [r for r in records if r.meta["synthetic"] == "generated"]
    assert sorted(r.prompt_messages[0].content for r in generated) == [
        "How long does the warranty last?", "How long is the return window?", "Where do I print the return label?"]
    assert all(r.meta["teacher"] == "stub-teacher" and r.meta["document"] == "policy" and r.meta["where"]
               for r in records)
    reasons = [json.loads(line)["reason"] for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert any(r.startswith("ungrounded: facts not in the chunk: 3 day") for r in reasons)
    assert "near-duplicate of a kept question" in reasons
    assert any(r.startswith("leaks a test record") for r in reasons)
    assert "the reply holds no question/answer JSON lines" in reasons
    assert {r.meta["heading"] for r in generated} == {"Shop policy > Returns", "Shop policy > Warranty"}
    kinds = json.loads((out / "synth.json").read_text())["by_kind"]
    assert kinds == {"generated": 3, "paraphrase": 3, "back_translation": 3}
    variant = next(r for r in records if r.meta["synthetic"] == "back_translation")
    assert variant.prompt_messages[0].content.startswith("In other words, ") and variant.meta["variant_of"]


def test_a_rerun_costs_no_request(project):
    runner = CliRunner()
    runner.invoke(app, ["synth", str(project), "data.chunking.min_tokens=4"], catch_exceptions=False)
    runner.invoke(app, ["synth", str(project), "data.chunking.min_tokens=4"], catch_exceptions=False)
    usage = json.loads((project.parent / "synth" / "teacher_usage.json").read_text())
    assert usage["requests"] == 0 and usage["cache_hits"] > 0


def test_review_round_trip_through_csv_xlsx_and_label_studio(project, tmp_path):
    runner = CliRunner()
    runner.invoke(app, ["synth", str(project), "data.chunking.min_tokens=4"], catch_exceptions=False)
    out = project.parent / "synth"
    with (out / "review.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1][1], rows[2][1], rows[2][3] = "no", "yes", "Edited answer."
    rows[3][1] = "yes"
    with (tmp_path / "filled.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    result = runner.invoke(app, ["synth-accept", str(out), str(tmp_path / "filled.csv"), "--out", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 0, result.output
    accepted = list(read_jsonl(tmp_path / "a.jsonl"))
    assert [r.id for r in accepted] == [rows[2][0], rows[3][0]]
    assert accepted[0].answer.content == "Edited answer." and accepted[0].meta["edited"] is True
    assert "1 rejected" in result.output and f"{len(rows) - 4} not reviewed" in result.output

    book = load_workbook(out / "review.xlsx")
    book.active["B2"] = "yes"
    book.save(tmp_path / "filled.xlsx")
    runner.invoke(app, ["synth-accept", str(out), str(tmp_path / "filled.xlsx"), "--out", str(tmp_path / "b.jsonl")])
    assert [r.id for r in read_jsonl(tmp_path / "b.jsonl")] == [rows[1][0]]

    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    tasks[0]["annotations"] = [{"result": [
        {"from_name": "review", "to_name": "prompt", "type": "choices", "value": {"choices": ["accept"]}},
        {"from_name": "answer", "to_name": "prompt", "type": "textarea", "value": {"text": ["Corrected in LS."]}}]}]
    tasks[1]["annotations"] = [{"result": [
        {"from_name": "review", "to_name": "prompt", "type": "choices", "value": {"choices": ["reject"]}}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    runner.invoke(app, ["synth-accept", str(out), str(tmp_path / "export.json"), "--out", str(tmp_path / "c.jsonl")])
    [only] = list(read_jsonl(tmp_path / "c.jsonl"))
    assert only.answer.content == "Corrected in LS." and only.meta["reviewed"] is True


def test_bad_review_input_and_missing_documents_are_named(project, tmp_path):
    runner = CliRunner()
    runner.invoke(app, ["synth", str(project), "data.chunking.min_tokens=4"], catch_exceptions=False)
    out = project.parent / "synth"
    text = (out / "review.csv").read_text(encoding="utf-8-sig").splitlines()
    first = text[1].split(",", 2)
    (tmp_path / "bad.csv").write_text("\n".join([text[0], f"{first[0]},maybe,{first[2]}"]))
    with pytest.raises(DataError, match=r"bad.csv:2: accept is 'maybe'; write yes or no"):
        runner.invoke(app, ["synth-accept", str(out), str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.jsonl")],
                      catch_exceptions=False)
    (tmp_path / "alien.csv").write_text("id,accept,question,answer\nnope,yes,q,a\n")
    with pytest.raises(DataError, match="id 'nope' is not a record of"):
        runner.invoke(app, ["synth-accept", str(out), str(tmp_path / "alien.csv"), "--out", str(tmp_path / "x.jsonl")],
                      catch_exceptions=False)
    with pytest.raises(ConfigError, match="teacher.synth_documents: .*missing does not exist"):
        runner.invoke(app, ["synth", str(project), "teacher.synth_documents=[missing]"], catch_exceptions=False)


def test_parsing_and_grounding_rules():
    reply = 'Here you go:\n```json\n{"question": "Q1?", "answer": "A1."}\n{"question": "", "answer": "x"}\nnot json\n```'
    assert parse_pairs(reply) == [("Q1?", "A1.")]
    chunk = "退货期限为收货后45天，运费由我们承担。"
    assert grounding_problem("收货后45天内可以退货。", chunk, 0.6) is None
    assert grounding_problem("收货后30天内可以退货。", chunk, 0.6).startswith("facts not in the chunk: 30 day")
    assert "of the answer's words are in the chunk" in grounding_problem("Yes, of course you can.", chunk, 0.6)
