"""Reasoning traces: the agreement filter (a trace reaching a wrong answer is rejected), replies with and
without a separate reasoning field or a closed think block, the run-folder rewrite that keeps the
trace-less original and loses nothing when the teacher fails, and `r1tune traces` end to end with the
base model as its own teacher."""

from __future__ import annotations

import json

import pytest
from helpers import write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.data.records import Message, Record, read_jsonl, write_jsonl
from r1tune.teacher import TeacherError, TeacherReply
from r1tune.teacher.traces import TraceSettings, add_traces, agrees, split_reply, trace_run_data

REFERENCE = "Returns are free within 30 days of delivery."


def _record(answer: str, reasoning: str | None = None) -> Record:
    return Record([Message("user", "Can I return it?"), Message("assistant", answer, reasoning)])


def _ask(replies: list[list[TeacherReply]], calls: list):
    def ask(conversations, n):
        calls.append((conversations, n))
        return replies[: len(conversations)]
    return ask


def test_the_first_sample_that_reaches_the_reference_is_kept_and_wrong_ones_are_rejected():
    keep = [TeacherReply("Returns are free.", None, "stop"),  # no think block at all
            TeacherReply("You must pay for returns.", "Think: fees apply", "stop"),  # wrong answer
            TeacherReply("<think>\nThe policy says 30 days.\n</think>\n\n" + REFERENCE, None, "stop")]
    reject = [TeacherReply("Returns cost 5 yuan.", "fees", "stop"), TeacherReply(REFERENCE, "", "stop")]
    calls: list = []
    records = [_record(REFERENCE), _record(REFERENCE), _record(REFERENCE, "already reasoned")]
    traced, quarantine = add_traces(records, _ask([keep, reject], calls), TraceSettings(samples=3))
    assert calls[0][1] == 3 and len(calls[0][0]) == 2  # the record that had reasoning is not asked
    assert traced[0].answer.reasoning == "The policy says 30 days." and traced[0].answer.content == REFERENCE
    assert traced[1].answer.reasoning is None and traced[2].answer.reasoning == "already reasoned"
    assert quarantine[0]["id"] == records[1].id
    assert quarantine[0]["reason"] == "none of 2 samples kept: answer disagrees with the reference, empty reasoning"


def test_the_judge_check_asks_the_teacher_about_each_thinking_sample():
    samples = [TeacherReply("Thirty days, free.", "The policy: 30 days.", "stop"),
               TeacherReply("No idea.", None, "stop"),  # no think block: never judged
               TeacherReply("Free returns within a month.", "30 days is a month.", "stop")]
    asked: list = []

    def ask(conversations, n):
        asked.append(conversations)
        if len(asked) == 1:
            return [samples]
        # the judge: says no to the first answer, yes to the third
        return [[TeacherReply("NO" if "Thirty days" in c[0]["content"] else "YES.", None, "stop")] for c in conversations]

    traced, quarantine = add_traces([_record(REFERENCE)], ask, TraceSettings(samples=3, check="judge"))
    assert len(asked[1]) == 2 and REFERENCE in asked[1][0][0]["content"]
    assert traced[0].answer.reasoning == "30 days is a month." and not quarantine


def test_agreement_checks():
    assert agrees("returns are FREE within 30 days of delivery!", REFERENCE, TraceSettings(check="exact"))
    assert not agrees("Returns are free within 14 days.", REFERENCE, TraceSettings(check="exact"))
    assert agrees("Returns are free within 30 days.", REFERENCE, TraceSettings(min_rouge_l=0.6))
    assert not agrees("Shipping takes a week.", REFERENCE, TraceSettings(min_rouge_l=0.3))
    assert split_reply(TeacherReply("plain answer", None, "stop")) == (None, "plain answer")


def test_the_run_data_keeps_its_original_and_survives_a_failing_teacher(tmp_path):
    write_jsonl([_record(REFERENCE), _record(REFERENCE)], tmp_path / "train.jsonl")
    before = (tmp_path / "train.jsonl").read_text()

    def broken(conversations, n):
        raise TeacherError("the teacher at http://x failed 6 times")

    with pytest.raises(TeacherError):
        trace_run_data(tmp_path, broken, TraceSettings())
    assert (tmp_path / "train.jsonl").read_text() == before  # nothing lost
    good = [[TeacherReply(REFERENCE, "the policy", "stop")]] * 2
    summary = trace_run_data(tmp_path, _ask(good, []), TraceSettings(samples=1))
    assert summary["traced"] == 2 and summary["quarantined"] == 0
    assert [r.answer.reasoning for r in read_jsonl(tmp_path / "train.jsonl")] == ["the policy"] * 2
    assert (tmp_path / "train.no_traces.jsonl").read_text() == before
    again = trace_run_data(tmp_path, _ask(good, []), TraceSettings(samples=1))  # starts from the original
    assert again["traced"] == 2 and json.loads((tmp_path / "traces.json").read_text())["records"] == 2


def test_traces_command_with_the_base_model_as_teacher(tiny_llama_dir, tmp_path):
    config = write_project(tmp_path, tiny_llama_dir, n_records=12,
                           extra="teacher: {source: self, trace_samples: 2, max_tokens: 8}\n")
    runner = CliRunner()
    assert runner.invoke(app, ["prepare", str(config)], catch_exceptions=False).exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    result = runner.invoke(app, ["traces", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "data" / "traces.json").read_text())
    # ChatML has no think block: every attempt is quarantined with that reason, and training data is intact
    assert summary["traced"] == 0 and summary["quarantined"] == summary["records"] > 0
    assert summary["teacher"]["requests"] == 2 * summary["records"]  # the ledger counts after asking
    rows = [json.loads(line) for line in (run / "data" / "traces_quarantine.jsonl").read_text().splitlines()]
    assert all(row["reason"] == "none of 2 samples kept: no </think>" for row in rows)
    assert "kept their old" in result.output and "now carry reasoning" in result.output


def test_run_adds_traces_after_prepare_when_asked(tiny_llama_dir, tmp_path):
    config = write_project(tmp_path, tiny_llama_dir, n_records=12,
                           extra="teacher: {source: self, trace_samples: 1, max_tokens: 4}\n")
    result = CliRunner().invoke(app, ["run", str(config), "data.reasoning_traces=true", "train.max_steps=1",
                                      "eval.reasoning_probes=0", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    assert "▶ traces" in result.output and (run / "data" / "traces.json").is_file()
    assert (run / "data" / "train.no_traces.jsonl").is_file()
