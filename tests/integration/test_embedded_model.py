"""The real embedded SmolLM2-135M: loads from its GGUF cache, formats like its own template, and learns."""

from __future__ import annotations

import pytest
from helpers import product_records

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.train import train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded():
    return models.load(ModelConfig())


def test_embedded_model_identity(embedded):
    assert embedded.source.kind == "embedded"
    assert embedded.renderer.fmt.name == "chatml"
    config = embedded.model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "llama", 30, 576, 49152)
    assert not hasattr(config, "quantization_config")  # the GGUF marker was dropped before caching


def test_a_few_lora_steps_lower_the_answer_loss(embedded, tmp_path):
    records = product_records(8)
    cfg = TrainConfig(max_steps=6, batch_size=4, lr=2e-3, warmup_ratio=0.0, log_every=1, max_seq_len=96)
    model, result = train(cfg, embedded.model, embedded.renderer, records, records[:4], tmp_path, seed=0,
                          default_target_modules=embedded.target_modules, show_progress=False)
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 6
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
    assert (result.result_dir / "adapter_model.safetensors").is_file()
