"""`r1tune prepare` and `r1tune mask` from the command line (no model weights involved)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from r1tune.cli import app

runner = CliRunner()


def test_mask_command_masks_jsonl_fields_and_text(tmp_path, monkeypatch):
    src = tmp_path / "chat.jsonl"
    src.write_text(json.dumps({"messages": [{"role": "user", "content": "我的手机13812345678"},
                                            {"role": "assistant", "content": "好的，订单号20240512123456已记录"}]},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "masked.jsonl"
    result = runner.invoke(app, ["mask", "--in", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    masked = json.loads(out.read_text(encoding="utf-8"))
    assert masked["messages"][0]["content"] == "我的手机[PHONE]"
    assert masked["messages"][1]["content"] == "好的，订单号20240512123456已记录"
    assert "masked 1 (PHONE 1)" in result.output

    monkeypatch.setenv("MY_SALT", "s3cret")
    text = tmp_path / "notes.txt"
    text.write_text("mail alice@example.com or call 13812345678\n", encoding="utf-8")
    result = runner.invoke(app, ["mask", "--in", str(text), "--out", str(tmp_path / "n.txt"), "--strategy", "hash",
                                 "--salt-env", "MY_SALT", "--types", "email"])
    assert result.exit_code == 0, result.output
    line = (tmp_path / "n.txt").read_text(encoding="utf-8")
    assert line.startswith("mail [EMAIL:") and "13812345678" in line


def test_mask_command_errors_are_clear(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("x\n")
    for args, message in (
        (["--in", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o.txt")], "input file not found"),
        (["--in", str(src), "--out", str(src)], "--out must differ from --in"),
        (["--in", str(src), "--out", str(tmp_path / "o.txt"), "--types", "SHOE"], "unknown PII type"),
        (["--in", str(src), "--out", str(tmp_path / "o.txt"), "--strategy", "hash",
          "--salt-env", "R1TUNE_TEST_UNSET_SALT"], "needs a secret salt"),
    ):
        result = runner.invoke(app, ["mask", *args])
        assert result.exit_code != 0 and message in str(result.exception or result.output), (args, result.output)


def test_prepare_command_prints_the_funnel(tmp_path, tiny_llama_dir):
    from helpers import write_project

    config = write_project(tmp_path, tiny_llama_dir, n_records=30)
    with (tmp_path / "data.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    result = runner.invoke(app, ["prepare", str(config)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "rejected: read 1" in output and "usable 30 → train 21 / val 3 / test 6" in output
    run = next((tmp_path / "runs").iterdir())
    report = json.loads((run / "data" / "data_report.json").read_text())
    assert report["token_counter"] == "tokenizer" and report["funnel"]["usable"] == 30
