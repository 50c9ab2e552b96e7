"""Continuing a version: training starts from the version's adapter (with a vanishing learning rate the
result is that adapter), only adapter methods can continue one, and replay mixes the version's training
records into the new training split, tagged, without duplicates."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_messages_jsonl, write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.data.records import Message, Record, read_jsonl
from r1tune.errors import ConfigError


def _version_adapter(model_dir, folder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora).save_pretrained(folder)
    return folder


def _run(config, *overrides):
    """`r1tune run` for one step; the run folder."""
    result = CliRunner().invoke(app, ["run", str(config), *overrides, "train.max_steps=1", "eval.reasoning_probes=0",
                                      "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return next((config.parent / "runs").iterdir())


def test_training_continues_from_the_versions_adapter(tiny_llama_dir, tmp_path):
    from safetensors.torch import load_file

    version = _version_adapter(tiny_llama_dir, tmp_path / "v1" / "train" / "adapter")
    config = write_project(tmp_path, tiny_llama_dir, n_records=12)
    run = _run(config, f"train.init_from={tmp_path / 'v1'}", "train.lr=1e-12")
    before, after = (load_file(d / "adapter_model.safetensors") for d in (version, run / "train" / "adapter"))
    assert before.keys() == after.keys() and all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert json.loads((run / "train" / "adapter" / "adapter_config.json").read_text())["r"] == 4  # the version's rank


def test_only_adapter_methods_continue_a_version(tiny_llama_dir, tmp_path):
    _version_adapter(tiny_llama_dir, tmp_path / "v1" / "train" / "adapter")
    config = write_project(tmp_path, tiny_llama_dir, n_records=12)
    with pytest.raises(ConfigError, match="train.init_from continues a LoRA/DoRA adapter; train.method is full"):
        CliRunner().invoke(app, ["run", str(config), f"train.init_from={tmp_path / 'v1'}", "train.method=full",
                                 "train.max_steps=1", "--no-progress"], catch_exceptions=False)


def test_replay_mixes_the_versions_records_into_training_only(tiny_llama_dir, tmp_path):
    old = [Record([Message("user", f"Old question {i}?"), Message("assistant", f"Old answer {i}.")]) for i in range(30)]
    (tmp_path / "v1" / "data").mkdir(parents=True)
    write_messages_jsonl(tmp_path / "v1" / "data" / "train.jsonl", old)
    config = write_project(tmp_path, tiny_llama_dir, n_records=20)
    run = _run(config, f"data.replay_from={tmp_path / 'v1'}", "data.replay_share=0.5")
    train = list(read_jsonl(run / "data" / "train.jsonl"))
    replayed = [r for r in train if r.meta.get("replay")]
    own = len(train) - len(replayed)
    assert len(replayed) == round(0.5 * own) and len({r.id for r in train}) == len(train)
    assert not any(r.meta.get("replay") for r in read_jsonl(run / "data" / "test.jsonl"))
    assert json.loads((run / "run.json").read_text())["replayed_records"] == len(replayed)
