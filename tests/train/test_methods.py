"""Every tuning method trains a tiny model for a few steps: the loss falls and only the intended
parameters change."""

from __future__ import annotations

import pytest
import torch
from helpers import product_records

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.errors import ConfigError
from r1tune.train import train


def _plain(name: str) -> str:
    """A parameter name as in the unwrapped model (peft prefixes and lora's base_layer removed)."""
    return name.replace("base_model.model.", "").replace(".base_layer", "")


def _train(model_dir, tmp_path, method: str, **extra):
    loaded = models.load(ModelConfig(name=str(model_dir)))
    before = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    settings = {"max_steps": 6, "batch_size": 4, "lr": 1e-2, "max_seq_len": 96, "warmup_ratio": 0.0,
                "precision": "fp32", "trackers": [], **extra}
    cfg = TrainConfig(method=method, **settings)
    model, result = train(cfg, loaded.model, loaded.renderer, product_records(8), [], tmp_path / "train", seed=0,
                          default_target_modules=loaded.target_modules, show_progress=False)
    after = {k: v.detach() for k, v in model.state_dict().items()}
    changed = {_plain(k) for k, v in after.items() if _plain(k) in before and not torch.equal(before[_plain(k)], v)}
    new = {k for k in after if _plain(k) not in before}
    losses = [row["loss"] for row in result.history]
    return result, changed, new, set(before), losses


@pytest.mark.parametrize("method", ["lora", "dora", "prefix", "prompt"])
def test_adapter_methods_change_only_their_own_weights(method, tiny_llama_dir, tmp_path):
    # Virtual tokens move the loss slowly; they are usually trained with a much higher learning rate.
    lr = 0.1 if method in ("prefix", "prompt") else 1e-2
    result, changed, new, _, losses = _train(tiny_llama_dir, tmp_path, method, lr=lr)
    assert losses[-1] < 0.9 * losses[0], losses
    assert not changed, f"base weights changed: {sorted(changed)[:5]}"
    markers = {"lora": ("lora_A", "lora_B"), "dora": ("lora_magnitude_vector",), "prefix": ("prompt_encoder",),
               "prompt": ("prompt_encoder",)}[method]
    assert any(m in k for k in new for m in markers), sorted(new)[:5]
    assert (result.result_dir / "adapter_config.json").is_file()
    assert result.packing is False


def test_full_changes_every_weight_and_saves_a_whole_model(tiny_llama_dir, tmp_path):
    result, changed, new, names, losses = _train(tiny_llama_dir, tmp_path, "full", lr=1e-3)
    assert losses[-1] < 0.8 * losses[0], losses
    assert not new and changed == names
    assert result.result_dir.name == "model" and (result.result_dir / "model.safetensors").is_file()
    assert (result.result_dir / "tokenizer.json").is_file()


def test_freeze_trains_only_the_top_layers_and_final_norm(tiny_llama_dir, tmp_path):
    _, changed, new, names, losses = _train(tiny_llama_dir, tmp_path, "freeze", freeze_trainable_layers=1, lr=1e-3)
    assert losses[-1] < losses[0], losses
    expected = {n for n in names if n.startswith("model.layers.1.") or n == "model.norm.weight"}
    assert changed == expected and not new


def test_freeze_with_more_layers_than_the_model_is_a_config_error(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="freeze_trainable_layers=5 but the model has 2 layers"):
        _train(tiny_llama_dir, tmp_path, "freeze", freeze_trainable_layers=5)


def test_qlora_without_cuda_says_it_needs_a_gpu(tiny_llama_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        _train(tiny_llama_dir, tmp_path, "qlora")


@pytest.mark.parametrize("settings, message", [
    ({"method": "prefix", "packing": True}, "packing: true cannot be combined with train.method: prefix"),
    ({"method": "prompt", "packing": True}, "packing: true cannot be combined with train.method: prompt"),
    ({"method": "prefix", "gradient_checkpointing": True}, "gradient_checkpointing cannot be combined"),
])
def test_impossible_combinations_are_config_errors(settings, message, tmp_path):
    from r1tune.configfile import load_config

    (tmp_path / "r1tune.yaml").write_text(
        "data: {sources: [{path: d.jsonl}]}\ntrain:\n" + "".join(f"  {k}: {str(v).lower()}\n" for k, v in settings.items()))
    with pytest.raises(ConfigError, match=message) as err:
        load_config(tmp_path / "r1tune.yaml")
    assert "train" in str(err.value)
