"""The CLI end to end on a tiny model: run, show-sample, config commands, error exits."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
from helpers import write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.errors import R1TuneError

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_is_fast_and_does_not_import_torch():
    code = "import time,sys; t=time.time(); from r1tune import cli; print(time.time()-t, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"  # heavy libraries load only inside commands


def test_run_writes_a_self_describing_run_folder(tiny_llama_dir, tmp_path, monkeypatch):
    config = write_project(tmp_path, tiny_llama_dir)
    result = _invoke("run", str(config), "train.max_steps=3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "base vs tuned" in result.output
    run = next((tmp_path / "runs").iterdir())
    for name in ("config.yaml", "run.json", "metrics.json", "report.html", "data/train.jsonl", "data/test.jsonl",
                 "data/data_report.json", "train/adapter/adapter_config.json",
                 "train/adapter/adapter_model.safetensors", "train/train_metrics.jsonl", "eval/samples.jsonl"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "done" and info["chat_format"] == "chatml"
    assert "max_steps: 3" in (run / "config.yaml").read_text()  # the override is recorded
    html = (run / "report.html").read_text()
    assert 'src="data:image/svg+xml;base64,' in html and "Base vs tuned" in html  # plots are inline images
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|url\(\s*["']?https?:|@import""", html)  # self-contained
    assert "Reasoning probes (forgetting)" in html and (run / "eval" / "reasoning_probes.jsonl").is_file()
    probes = json.loads((run / "metrics.json").read_text())["reasoning_probes"]
    assert probes["n"] == 24 and set(probes["accuracy"]) == {"base", "tuned"} and len(probes["ci"]) == 2

    # The run's stages can be re-run one by one.
    assert _invoke("eval", str(run), "--no-progress").exit_code == 0
    assert _invoke("report", str(run)).exit_code == 0
    exported = tmp_path / "merged"
    result = _invoke("export", str(run), "--out", str(exported))
    assert result.exit_code == 0, result.output
    assert (exported / "model.safetensors").is_file() and (exported / "r1tune_export.json").is_file()
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(exported / "model.safetensors").values()} == {torch.bfloat16}
    check = json.loads((exported / "verify.json").read_text())
    # a random tiny model's near-tie greedy tokens flip under bf16 rounding; its perplexity must still hold
    assert check["same_prompt_ids"] and check["n"] > 0 and abs(check["perplexity_change_pct"]) <= 0.5, check
    assert 0 <= check["greedy_agreement"] <= 1 and "verification" in result.output
    card = (exported / "README.md").read_text()
    for section in ("## How to prompt it", "## Data", "## Training", "## Evaluation", "## Verification",
                    "## Intended use and limits"):
        assert section in card, section
    assert "| perplexity on test answers |" in card and ("**passed**" in card or "**FAILED**" in card)
    assert not (tmp_path / "merged.tmp").exists()  # the temporary folder was swapped in
    result = _invoke("export", str(run), "--out", str(tmp_path / "gguf"), "--format", "gguf", "--quant", "f16")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == [
        "README.md", "model-f16.gguf", "r1tune_export.json", "verify.json"]
    gguf_check = json.loads((tmp_path / "gguf" / "verify.json").read_text())
    assert gguf_check["same_prompt_ids"] and abs(gguf_check["perplexity_change_pct"]) <= 0.5, gguf_check
    assert "llama-server -m model-f16.gguf" in (tmp_path / "gguf" / "README.md").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("r1tune.export.gguf_writer.write_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "half"), "--format", "gguf"],
                      catch_exceptions=False)
    assert not (tmp_path / "half").exists()  # an interrupted export leaves no half export
    with pytest.raises(R1TuneError, match="cannot write the export"):
        runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "missing" / "deep" / "x")],
                      catch_exceptions=False)


def test_a_whole_model_run_is_evaluated_exported_chatted_and_served_from_its_trained_weights(tiny_llama_dir,
                                                                                              tmp_path):
    """`freeze` (like `full`) trains the weights themselves: every later stage must read train/model/."""
    from safetensors.torch import load_file

    from r1tune.rundir import RunDir
    from r1tune.serve.runtime import resolve_target

    config = write_project(tmp_path, tiny_llama_dir)
    result = _invoke("run", str(config), "train.method=freeze", "train.freeze_trainable_layers=1", "train.max_steps=3",
                     "eval.redteam=[]", "--no-progress")
    assert result.exit_code == 0, result.output
    run = RunDir(next((tmp_path / "runs").iterdir()))
    assert run.trains_whole_model and not run.adapter.exists()
    assert str(run.whole_model) in result.output.replace("\n", "")  # the printed run files name the model
    metrics = run.read_metrics()
    # The base is the untouched model loaded beside the tuned one, so the two perplexities differ.
    assert metrics.base.perplexity != metrics.tuned.perplexity

    assert _invoke("eval", str(run.path), "--no-progress").exit_code == 0
    again = run.read_metrics()
    assert again.tuned.perplexity == pytest.approx(metrics.tuned.perplexity, rel=1e-4)
    assert again.base.perplexity == pytest.approx(metrics.base.perplexity, rel=1e-4)

    exported = tmp_path / "exported"
    result = _invoke("export", str(run.path), "--out", str(exported), "--dtype", "fp32")
    assert result.exit_code == 0, result.output
    assert json.loads((exported / "verify.json").read_text())["greedy_agreement"] == 1.0
    trained, copied = (load_file(next(d.glob("*.safetensors"))) for d in (run.whole_model, exported))
    assert trained.keys() == copied.keys() and all(torch.equal(trained[k], copied[k]) for k in trained)
    provenance = json.loads((exported / "r1tune_export.json").read_text())
    assert provenance["source"] == str(run.path) and provenance["kind"] == "whole_model"
    half = tmp_path / "exported-bf16"
    assert _invoke("export", str(run.path), "--out", str(half), "--no-verify").exit_code == 0
    weights = [load_file(f) for f in half.glob("*.safetensors")]  # only the bf16 weights, no fp32 left behind
    assert weights and {t.dtype for w in weights for t in w.values()} == {torch.bfloat16}

    target = resolve_target(run.path)
    assert target.weights_dir == run.whole_model and target.run_adapter_name is None
    result = _invoke("generate", str(run.path), "Describe a mug", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output


@pytest.fixture
def wide_console(monkeypatch):
    """No wrapping, however long this machine's temporary paths are (pytest-xdist adds a folder level)."""
    from r1tune import cli

    monkeypatch.setattr(cli.out, "width", 1000)


def test_show_sample_highlights_trained_tokens(tiny_llama_dir, tmp_path, wide_console):
    config = write_project(tmp_path, tiny_llama_dir)
    result = _invoke("show-sample", str(config), "-n", "1")
    assert result.exit_code == 0, result.output
    assert "data.jsonl:1" in result.output and "format chatml" in result.output
    # Without a colour terminal the trained spans are bracketed: exactly the answer and its end token.
    assert "<|im_start|>assistant\n⟦This blue mug is made of ceramic. Buy it today!<|im_end|>⟧" in result.output
    assert result.output.count("⟦") == 2  # the legend and the one trained span


def test_show_sample_shows_records_as_training_sees_them(tiny_llama_dir, tmp_path, wide_console):
    """Cleaned, PII-masked and filtered like `prepare` does, from a project file; the prepared split from a run."""
    config = write_project(tmp_path, tiny_llama_dir)
    rows = [{"messages": [{"role": "user", "content": "Call me?"}, {"role": "assistant", "content": ""}]},
            {"messages": [{"role": "user", "content": "My phone is 13812345678, call <b>me</b>."},
                          {"role": "assistant", "content": "We will call 13812345678 today."}]}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shown = " ".join(_invoke("show-sample", str(config), "-n", "1").output.split())
    assert "13812345678" not in shown and "[PHONE]" in shown and "<b>" not in shown
    assert "1 record(s) dropped on the way" in shown and "data.jsonl:2" in shown

    config = write_project(tmp_path, tiny_llama_dir)
    assert _invoke("prepare", str(config)).exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    shown = " ".join(_invoke("show-sample", str(run), "-n", "2").output.split())
    assert "prepared train split" in shown and shown.count("tokens,") == 2


def test_config_show_schema_and_docs(tiny_llama_dir, tmp_path):
    config = write_project(tmp_path, tiny_llama_dir)
    shown = _invoke("config", "show", str(config), "train.lr=0.5")
    assert shown.exit_code == 0 and "lr: 0.5" in shown.output and str(tmp_path) in shown.output
    schema = json.loads(_invoke("config", "schema").output)
    assert schema["additionalProperties"] is False and "train" in schema["properties"]
    assert "| `train.lr` |" in _invoke("config", "docs").output


def test_bad_config_exits_2_with_a_message(tmp_path):
    bad = tmp_path / "r1tune.yaml"
    bad.write_text("data: {sources: [{path: x.jsonl}]}\ntrain: {lr: -1}\n")
    proc = subprocess.run([sys.executable, "-m", "r1tune", "config", "show", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "train.lr (line 2): got -1" in proc.stderr and "Traceback" not in proc.stderr


def test_init_writes_the_example_project(tmp_path):
    target = tmp_path / "shop"
    assert _invoke("init", str(target), "--example", "ecommerce").exit_code == 0
    assert (target / "r1tune.yaml").is_file() and (target / "products.csv").is_file()
    assert _invoke("config", "show", str(target)).exit_code == 0
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code != 0


def test_models_lists_presets(monkeypatch):
    from r1tune import cli

    monkeypatch.setattr(cli.out, "width", 220)
    result = _invoke("models")
    assert "deepseek-r1-distill-qwen-7b" in result.output and "0.6/0.95" in result.output


@pytest.mark.parametrize("model_fixture, reasoning, chat_format", [
    ("tiny_qwen_r1_dir", "keep_prompt_think", "deepseek-r1"), ("tiny_llama_dir", "empty_think", "chatml")])
def test_an_export_is_prompted_with_the_same_token_ids_as_its_run(request, tmp_path, model_fixture, reasoning,
                                                                 chat_format):
    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.data import Message
    from r1tune.rundir import RunDir

    config = write_project(tmp_path, request.getfixturevalue(model_fixture))
    result = _invoke("run", str(config), "train.max_steps=2", f"train.reasoning={reasoning}", "eval.redteam=[]",
                     "eval.compare_base=false", "--no-progress")
    assert result.exit_code == 0, result.output
    run = RunDir(next((tmp_path / "runs").iterdir()))
    exported = tmp_path / "exported"
    assert _invoke("export", str(run.path), "--out", str(exported)).exit_code == 0
    cfg = run.load_config()
    trained = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, with_weights=False)
    served = models.load(ModelConfig(name=str(exported)), with_weights=False)
    assert trained.renderer.fmt.name == served.renderer.fmt.name == chat_format
    assert served.renderer.reasoning == reasoning and served.source.provenance.kind == "adapter"
    chat = [Message("system", "You sell mugs."), Message("user", "Describe the blue mug."),
            Message("assistant", "It is blue.", reasoning="The user wants a colour."),
            Message("user", "And the red one?")]
    assert served.renderer.render_prompt(chat) == trained.renderer.render_prompt(chat)


@pytest.mark.parametrize(("override", "message"), [
    ("train.precision=fp16", "fp16 needs a GPU"),
    ("model.attn_implementation=flash_attention_2", "flash_attention_2 needs a CUDA GPU"),
    ("eval.engine=vllm", "eval.engine: vllm needs a CUDA GPU"),
])
def test_hardware_this_machine_lacks_fails_before_any_run_folder_or_weights(tiny_llama_dir, tmp_path, override,
                                                                              message):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = write_project(tmp_path, tiny_llama_dir)
    result = runner.invoke(app, ["run", str(config), override, "--no-progress"])
    assert result.exit_code != 0 and message in str(result.exception)
    assert not (tmp_path / "runs").exists()
