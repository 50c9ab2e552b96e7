"""Evaluation on a tiny model: perplexity is exp(mean answer-token loss); base vs tuned side by side."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import product_records

from r1tune import models
from r1tune.config import EvalConfig, ModelConfig
from r1tune.eval import evaluate
from r1tune.models.scoring import answer_loss, collate


def test_perplexity_is_exp_of_mean_answer_token_loss(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    examples = [loaded.renderer.render_training(r) for r in product_records(5)]
    summary = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=2)
    # Independent reference: transformers' own loss, one example at a time, weighted by answer tokens.
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            batch = collate([example], loaded.tokenizer.pad_token_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(loaded.model(**batch).loss) * n
            count += n
    assert summary.tokens == count == sum(e.num_trained for e in examples)
    assert summary.mean_nll == pytest.approx(total / count, rel=1e-5)
    assert summary.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)


def test_padding_does_not_change_the_loss(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    records = product_records(4)
    records[0].messages[0] = type(records[0].messages[0])("user", "a much longer question " * 6)
    examples = [loaded.renderer.render_training(r) for r in records]
    together = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=4)
    alone = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=1)
    assert together.mean_nll == pytest.approx(alone.mean_nll, rel=1e-4)


def test_evaluate_compares_base_and_tuned(tiny_llama_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    peft_model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    loaded.model = peft_model
    metrics = evaluate(EvalConfig(max_new_tokens=4, batch_size=3), loaded, product_records(5), tmp_path,
                       precision="fp32", max_seq_len=128, show_progress=False)
    assert metrics["n_examples"] == 5
    for name in ("base", "tuned"):
        assert metrics[name]["perplexity"] > 1 and 0 <= metrics[name]["rougeL"] <= 100
        assert metrics[name]["answer_tokens"] > 0
    # A random non-zero adapter changes the model, so the two perplexities differ.
    assert metrics["base"]["perplexity"] != metrics["tuned"]["perplexity"]
    assert metrics["delta"]["perplexity_change_pct"] == pytest.approx(
        100 * (metrics["tuned"]["perplexity"] / metrics["base"]["perplexity"] - 1))
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 and {"prompt", "reference", "base", "tuned"} <= set(samples[0])


def test_empty_test_split_is_explained(tiny_llama_dir, tmp_path):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    with pytest.raises(ValueError, match="test split is empty"):
        evaluate(EvalConfig(), loaded, [], tmp_path, precision="fp32", max_seq_len=64, show_progress=False)
