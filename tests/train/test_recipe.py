"""The training recipe on tiny random models: loss falls, only LoRA weights change, adapter reloads;
metrics and trackers, truncation reporting, early stopping that keeps the best, label smoothing,
gradient checkpointing."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import product_records

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.errors import ConfigError
from r1tune.train import train


def _train(model_dir, tmp_path, weights_dtype=None, **overrides):
    loaded = models.load(ModelConfig(name=str(model_dir)))
    if weights_dtype is not None:
        loaded.model.to(weights_dtype)
    cfg = TrainConfig(**{"max_steps": 12, "batch_size": 4, "lr": 1e-2, "max_seq_len": 96, "log_every": 1,
                         "warmup_ratio": 0.0, "precision": "fp32", "eval_every": 6, **overrides})
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
    assert (result.result_dir / "adapter_model.safetensors").is_file()
    assert not any(p.suffix == ".bin" for p in result.result_dir.iterdir())
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), result.result_dir)
    ids = torch.tensor([[1, 2, 3, 4]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-5)
    rows = [json.loads(line) for line in (tmp_path / "train" / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "trained_tokens_per_s", "trained_tokens"} <= set(rows[0])
    assert rows[0]["trained_tokens"] < rows[2]["trained_tokens"]  # cumulative
    assert "val_loss" in rows[-1]  # always validated at the end
    summary = json.loads((tmp_path / "train" / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["packing"] is False and 0 < summary["fill_rate"] <= 1
    assert list((tmp_path / "train" / "tensorboard").glob("events.out.tfevents.*"))


def test_unknown_target_module_is_a_config_error(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="wq_proj"):
        _train(tiny_llama_dir, tmp_path, target_modules=["wq_proj"])


def test_everything_truncated_is_a_config_error(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="max_seq_len"):
        _train(tiny_llama_dir, tmp_path, max_seq_len=16)


def test_truncation_is_counted_and_reported(tiny_llama_dir, tmp_path, caplog):
    from r1tune.data.records import Message, Record

    records = product_records(6)
    records.append(Record([Message("user", "Describe the mug."), Message("assistant", "Lovely. " * 80)],
                          source="long.jsonl:1"))  # answer cut short, still trained
    records.append(Record([Message("user", "word " * 200), Message("assistant", "Fine.")],
                          source="long.jsonl:2"))  # nothing of the answer survives: skipped, named
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    cfg = TrainConfig(max_steps=1, max_seq_len=96, precision="fp32", trackers=[])
    with caplog.at_level("WARNING"):
        _, result = train(cfg, loaded.model, loaded.renderer, records, [], tmp_path, seed=0,
                          default_target_modules=loaded.target_modules, show_progress=False)
    assert (result.truncated, result.dropped_empty) == (2, 1)
    assert "long.jsonl:2: no trained token left after truncation to train.max_seq_len=96" in caplog.text
    skipped = [json.loads(line) for line in (tmp_path / "skipped_records.jsonl").read_text().splitlines()]
    assert [s["source"] for s in skipped] == ["long.jsonl:2"] and "(the prompt alone is" in skipped[0]["reason"]
    assert "2 of 8 records were longer than train.max_seq_len=96" in caplog.text


def test_early_stopping_stops_on_patience_and_keeps_the_best(tiny_llama_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from r1tune.models.scoring import LossSummary
    from r1tune.train import recipe

    scripted = iter([3.0, 2.0, 2.5, 2.6, 2.7, 2.8])  # best at the 2nd validation, then worse
    monkeypatch.setattr(recipe, "answer_loss", lambda *a, **k: LossSummary(next(scripted), 10))
    _, model, result, _ = _train(tiny_llama_dir, tmp_path, eval_every=1, early_stopping_patience=2)
    assert result.stopped_early and result.steps == 4
    assert (result.best_step, result.best_val_loss, result.val_loss) == (2, 2.0, 2.0)
    best = load_file(tmp_path / "train" / "checkpoints" / "step-000002" / "trainable.safetensors")
    final = load_file(result.result_dir / "adapter_model.safetensors")
    # The saved adapter holds the best step's weights, not the last step's (peft drops the adapter name).
    assert {k.replace(".default", "") for k in best} == set(final)
    assert all(torch.equal(final[k.replace(".default", "")], v) for k, v in best.items())


def test_label_smoothing_and_gradient_checkpointing(tiny_llama_dir, tmp_path):
    base = {"max_steps": 2, "lora_dropout": 0.0, "trackers": [], "eval_every": None}
    plain = _train(tiny_llama_dir, tmp_path / "a", **base)[2].history
    recomputed = _train(tiny_llama_dir, tmp_path / "b", gradient_checkpointing=True, **base)[2].history
    smoothed = _train(tiny_llama_dir, tmp_path / "c", label_smoothing=0.1, **base)[2].history
    assert [r["loss"] for r in recomputed] == pytest.approx([r["loss"] for r in plain], abs=1e-5)
    assert smoothed[0]["loss"] != pytest.approx(plain[0]["loss"], abs=1e-3)  # the setting reaches the loss


def test_bf16_on_a_cpu_trains_through_the_matmul_attention_and_keeps_freed_memory(tiny_qwen_r1_dir, tmp_path,
                                                                                 monkeypatch):
    from r1tune.models import attention
    from r1tune.models.device import current_plan
    from r1tune.train import recipe

    if current_plan("auto").compute != "bf16":
        pytest.skip("this CPU computes no bf16, so its training takes no bf16 path")
    calls = {"allocator": 0, "matmul_attention": 0}
    monkeypatch.setattr(recipe, "keep_freed_memory", lambda: calls.update(allocator=calls["allocator"] + 1))
    chunks = attention._query_chunks

    def counted(length, causal):
        calls["matmul_attention"] += 1
        return chunks(length, causal)

    monkeypatch.setattr(attention, "_query_chunks", counted)
    monkeypatch.setattr(attention, "CAUSAL_CHUNK_ROWS", 16)  # the records' rows go in several chunks
    # the frozen base in bf16, as the device plan holds it on such a CPU (models/device.py)
    _, _, result, _ = _train(tiny_qwen_r1_dir, tmp_path, torch.bfloat16, precision="bf16")
    losses = [row["loss"] for row in result.history]
    assert result.precision == "bf16" and losses[-1] < 0.7 * losses[0], losses
    assert calls["allocator"] == 1 and calls["matmul_attention"] > 0
    assert attention._bias_cache == [None, None]
