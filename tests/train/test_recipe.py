"""The training recipe on tiny random models: loss falls, only LoRA weights change, adapter reloads."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import product_records

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.errors import ConfigError
from r1tune.train import train


def _train(model_dir, tmp_path, **overrides):
    loaded = models.load(ModelConfig(name=str(model_dir)))
    cfg = TrainConfig(**{"max_steps": 12, "batch_size": 4, "lr": 1e-2, "max_seq_len": 96, "log_every": 1,
                         "warmup_ratio": 0.0, "precision": "fp32", **overrides})
    before = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    model, result = train(cfg, loaded.model, loaded.renderer, product_records(8), product_records(4),
                          tmp_path / "train", seed=0, default_target_modules=loaded.target_modules,
                          show_progress=False)
    return loaded, model, result, before


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_qwen_r1_dir"])
def test_loss_falls_and_only_lora_changes(fixture, request, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    loaded, model, result, before = _train(model_dir, tmp_path)
    losses = [row["loss"] for row in result.history]
    assert result.steps == 12 and len(losses) == 12
    assert losses[-1] < 0.7 * losses[0], losses
    after = model.state_dict()
    lora_keys = [k for k in after if "lora_" in k]
    assert lora_keys
    base_keys = {k.replace("base_model.model.", "").replace(".base_layer", ""): k for k in after if "lora_" not in k}
    for plain, wrapped in base_keys.items():
        assert torch.equal(before[plain], after[wrapped]), f"base weight {plain} changed"
    assert result.val_loss is not None and result.trained_tokens > 0


def test_adapter_is_peft_loadable_and_metrics_written(tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, model, result, _ = _train(tiny_llama_dir, tmp_path, max_steps=3)
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert not any(p.suffix == ".bin" for p in result.adapter_dir.iterdir())
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), result.adapter_dir)
    ids = torch.tensor([[1, 2, 3, 4]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-5)
    rows = [json.loads(line) for line in (tmp_path / "train" / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"loss", "lr", "grad_norm", "trained_tokens_per_s"} <= set(rows[0])
    summary = json.loads((tmp_path / "train" / "train_summary.json").read_text())
    assert summary["steps"] == 3


def test_unknown_target_module_is_a_config_error(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="wq_proj"):
        _train(tiny_llama_dir, tmp_path, target_modules=["wq_proj"])


def test_everything_truncated_is_a_config_error(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="max_seq_len"):
        _train(tiny_llama_dir, tmp_path, max_seq_len=16)
