"""Every CPU export format on a tiny Llama (ChatML) and a tiny Qwen2 with the real R1 tokenizer: it exports,
verifies and loads back; and every refusal (GPTQ without CUDA, DoRA or modules_to_save for vLLM, an
unknown format or quant) comes before any weights are touched."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from helpers import write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.errors import R1TuneError
from r1tune.export import export_run
from r1tune.export.formats import ExportOptions
from r1tune.rundir import open_run

ARCHES = ["tiny_llama_dir", "tiny_qwen_r1_dir"]


@pytest.fixture(scope="module", params=ARCHES)
def trained_run(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    config = write_project(folder, request.getfixturevalue(request.param), n_records=20)
    result = CliRunner().invoke(app, ["run", str(config), "train.max_steps=2", "eval.max_new_tokens=4", "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return next((folder / "runs").iterdir())


def _export(run: Path, out: Path, **options) -> dict:
    path, check = export_run(open_run(run), out, ExportOptions(**options))
    assert path == out and not out.with_name(out.name + ".tmp").exists()
    assert (out / "README.md").is_file() and (out / "r1tune_export.json").is_file()
    return check


def test_merged_export_loads_back_and_answers_like_the_run(trained_run, tmp_path):
    check = _export(trained_run, tmp_path / "merged", fmt="merged", dtype="fp32")
    assert check["passed"] and check["same_prompt_ids"] and check["greedy_agreement"] == 1.0, check
    from r1tune import models
    from r1tune.config import ModelConfig

    loaded = models.load(ModelConfig(name=str(tmp_path / "merged")))  # prompted as the run, from its provenance
    assert loaded.renderer.fmt.name == json.loads((tmp_path / "merged" / "r1tune_export.json").read_text())["chat_format"]


def test_ollama_export_is_a_gguf_with_a_modelfile(trained_run, tmp_path, monkeypatch):
    # The R1 GGUF's metadata and Qwen2 weights are checked in test_gguf.py (and by llama.cpp in the k-quant
    # test where llama-cpp-python is installed); checking it here again would re-parse its 152k-token
    # vocabulary twice in transformers (~40 s).
    from r1tune.export import gguf_writer

    write_gguf, sources = gguf_writer.write_gguf, []

    def recorded(model_dir, out_file, quant, chat_template=None, tensors=None):
        sources.append((sorted(p.name for p in model_dir.iterdir()), tensors is not None))
        return write_gguf(model_dir, out_file, quant, chat_template, tensors)

    monkeypatch.setattr(gguf_writer, "write_gguf", recorded)
    verify = "qwen_r1" not in trained_run.parents[1].name
    check = _export(trained_run, tmp_path / "ollama", fmt="ollama", quant="q8_0", verify=verify)
    # the adapter is merged as the GGUF is written: no merged weights on disk, only config and tokenizer
    [(scratch_files, streamed)] = sources
    assert streamed and "config.json" in scratch_files and not any(".safetensors" in f for f in scratch_files)
    files = {p.name for p in (tmp_path / "ollama").iterdir()}
    assert {"model-q8_0.gguf", "Modelfile"} <= files and "hf" not in files
    modelfile = (tmp_path / "ollama" / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model-q8_0.gguf") and "TEMPLATE" in modelfile
    if verify:
        assert "verify.json" in files and check["same_prompt_ids"] and check["dtype"] == "q8_0"
    assert "ollama create" in (tmp_path / "ollama" / "README.md").read_text()


def test_int8_export_loads_back_through_r1tunes_loader(trained_run, tmp_path):
    pytest.importorskip("torchao")
    check = _export(trained_run, tmp_path / "int8", fmt="int8")
    config = json.loads((tmp_path / "int8" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "torchao"
    # a random tiny model's near-ties flip under rounding; the perplexity must stay within the int8 tolerance
    assert check["same_prompt_ids"] and abs(check["perplexity_change_pct"]) <= check["tolerance_pct"], check
    from r1tune import models
    from r1tune.config import ModelConfig

    loaded = models.load(ModelConfig(name=str(tmp_path / "int8")))
    assert "Int8" in type(loaded.model.model.layers[0].mlp.up_proj.weight).__name__
    # and r1tune's server loads it the way it serves (device plan, packing) and answers with it
    from r1tune.data.records import Message
    from r1tune.models.device import current_plan
    from r1tune.models.generation import generate
    from r1tune.serve.runtime import load_serving_model

    served = load_serving_model(loaded.source, ModelConfig(name=str(tmp_path / "int8")), current_plan())
    assert "Int8" in type(served.model.layers[0].mlp.up_proj.weight).__name__
    prompt = loaded.renderer.render_prompt([Message("user", "Is the mug ceramic?")])
    assert generate(served, loaded.renderer, [prompt], 4)[0].num_tokens > 0


def test_vllm_export_copies_the_adapter_byte_for_byte_with_template_and_command(trained_run, tmp_path):
    check = _export(trained_run, tmp_path / "vllm", fmt="vllm")
    folder = tmp_path / "vllm"
    assert check["passed"] and check["method"] == "byte-identical adapter files" and check["n"] >= 2
    command = (folder / "vllm-serve.sh").read_text()
    assert "vllm serve" in command and "--enable-lora --lora-modules tiny=./adapter" in command
    assert "--chat-template ./chat_template.jinja" in command and "--max-lora-rank" in command
    think = "<think>" in (folder / "chat_template.jinja").read_text()
    assert ("--reasoning-parser deepseek_r1" in command) == think
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="k-quants need llama-cpp-python")
def test_k_quant_gguf_is_written_by_llama_cpp_and_read_back_by_it(trained_run, tmp_path):
    check = _export(trained_run, tmp_path / "q4", fmt="gguf", quant="q4_k_m")
    assert [p.name for p in (tmp_path / "q4").glob("*.gguf")] == ["model-q4_k_m.gguf"]
    assert check["llama_cpp"]["same_prompt_ids"] and check["llama_cpp"]["n"] == check["n"]
    assert check["llama_cpp"]["perplexity_export"] > 1


def _adapter_copy(run: Path, tmp_path: Path, **changes) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config_file = copy / "train" / "adapter" / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **changes}))
    return copy


@pytest.mark.parametrize(("changes", "message"), [
    ({"use_dora": True}, "vLLM cannot serve DoRA adapters"),
    ({"modules_to_save": ["lm_head"]}, r"vLLM cannot serve adapters with modules_to_save \(\['lm_head'\]\)"),
])
def test_vllm_refuses_adapters_it_cannot_serve_before_any_work(trained_run, tmp_path, monkeypatch, changes, message):
    run = _adapter_copy(trained_run, tmp_path, **changes)
    monkeypatch.setattr("r1tune.export.merge.merge_adapter", _must_not_run)
    with pytest.raises(R1TuneError, match=message):
        export_run(open_run(run), tmp_path / "out", ExportOptions(fmt="vllm"))
    assert not (tmp_path / "out").exists()


def _must_not_run(*args, **kwargs):
    raise AssertionError("weights were touched before the request was refused")


@pytest.mark.parametrize(("options", "message"), [
    ({"fmt": "gptq"}, "export --format gptq needs a CUDA GPU, and this machine has none"),
    ({"fmt": "awq"}, "export --format awq needs a CUDA GPU"),
    ({"fmt": "onnx"}, "--format 'onnx' is not one of merged, gguf, ollama, int8, gptq, awq, vllm"),
    ({"fmt": "gguf", "quant": "q3_k"}, "--quant 'q3_k' is not supported for GGUF"),
    ({"fmt": "merged", "dtype": "fp8"}, "--dtype must be bf16 or fp32"),
])
def test_bad_requests_fail_before_any_weights_load(trained_run, tmp_path, monkeypatch, options, message):
    import torch

    if options["fmt"] in ("gptq", "awq") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr("r1tune.export.merge.merge_adapter", _must_not_run)
    with pytest.raises(R1TuneError, match=message):
        export_run(open_run(trained_run), tmp_path / "out", ExportOptions(**options))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("trained_run", ["tiny_llama_dir"], indirect=True)
def test_the_check_holds_one_model_at_a_time_in_fp32_on_this_machines_device(trained_run, tmp_path, monkeypatch):
    import gc
    import weakref

    from r1tune import models
    from r1tune.export import verify

    plans, run_models = [], []
    real_load, real_load_export = models.load, verify._load_export

    def recording_load(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        if loaded.model is not None:  # the run's, then the export's (the shard-by-shard merge loads none)
            plans.append(kwargs.get("plan"))
            run_models.append(weakref.ref(loaded.model))
        return loaded

    def load_export_after_the_run_is_gone(*args, **kwargs):
        gc.collect()
        assert len(run_models) == 1 and run_models[0]() is None, "the run's weights are still held"
        return real_load_export(*args, **kwargs)

    monkeypatch.setattr(models, "load", recording_load)
    monkeypatch.setattr(verify, "_load_export", load_export_after_the_run_is_gone)
    check = _export(trained_run, tmp_path / "merged", fmt="merged", dtype="fp32")
    assert check["passed"] and check["greedy_agreement"] == 1.0, check
    assert len(plans) == 2 and all(p.compute == "fp32" and p.device == "cpu" for p in plans)  # CUDA's GPUs there


def test_gguf_of_a_whole_model_run_is_read_from_its_model_folder(tiny_llama_dir, tmp_path):
    """A `full` run's train/model (stored in the training dtype) is converted where it lies, not copied first."""
    config = write_project(tmp_path, tiny_llama_dir, n_records=12)
    result = CliRunner().invoke(app, ["run", str(config), "train.method=full", "train.max_steps=1",
                                      "eval.max_new_tokens=4", "eval.reasoning_probes=0", "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    check = _export(run, tmp_path / "gguf", fmt="gguf", quant="f16")
    # the file holds the trained weights (a random model's greedy answers flip on near-ties, so agreement is
    # not the measure here)
    assert check["same_prompt_ids"] and check["dtype"] == "f16" and check["perplexity_change_pct"] < 0.5, check
    assert [p.name for p in (tmp_path / "gguf").glob("*.gguf")] == ["model-f16.gguf"]
