"""QLoRA end to end where bitsandbytes is installed (the `gpu` extra; absent from CI, so skipped there): the
base loads through `models.load_model(nf4=True)` as 4-bit NF4 with double quantisation, gets k-bit
preparation, LoRA attaches to bitsandbytes' layers (not r1tune's fused one), the recipe trains, validates and
checkpoints, and the adapter it saves loads onto the unquantised base for merging and export.

r1tune refuses QLoRA without CUDA. bitsandbytes also runs NF4 on a CPU, so on a CPU this test lifts that
refusal and places the 4-bit base on the CPU instead of GPU 0; on a CUDA machine it runs as users run it."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from helpers import product_records

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.models import loading
from r1tune.train import methods, train

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                                reason="QLoRA needs bitsandbytes, the optional extra r1tune[gpu]")


@pytest.fixture
def nf4_where_this_machine_runs_it(monkeypatch):
    if not torch.cuda.is_available():
        real_placement = loading._nf4_placement
        monkeypatch.setattr(loading, "_nf4_placement", lambda dtype: {**real_placement(dtype), "device_map": {"": "cpu"}})
        monkeypatch.setattr(methods, "check_method_runnable", lambda cfg: None)  # the CUDA check


def test_qlora_trains_a_4bit_base_and_its_adapter_loads_onto_the_unquantised_base(nf4_where_this_machine_runs_it,
                                                                                   tiny_llama_dir, tmp_path):
    from bitsandbytes.nn import Linear4bit
    from peft import PeftModel

    cfg = ModelConfig(name=str(tiny_llama_dir))
    loaded = models.load(cfg, with_weights=False)
    base = models.load_model(loaded.source, cfg, dtype=torch.bfloat16, nf4=True)
    assert base.is_loaded_in_4bit and isinstance(base.model.layers[0].mlp.down_proj, Linear4bit)
    settings = TrainConfig(method="qlora", max_steps=6, batch_size=2, max_seq_len=96, lr=5e-3, save_every=3,
                           trackers=[], precision="bf16", lora_dropout=0.0)
    model, result = train(settings, base, loaded.renderer, product_records(12), product_records(4), tmp_path / "run",
                          seed=1, default_target_modules=loaded.target_modules, show_progress=False)

    adapted = model.base_model.model.model.layers[0].mlp.down_proj
    assert type(adapted).__module__ == "peft.tuners.lora.bnb"  # peft's 4-bit LoRA layer, not the fused add
    assert all("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    assert result.history[-1]["loss"] < result.history[0]["loss"] and result.val_loss is not None
    assert (tmp_path / "run" / "checkpoints" / "step-000003" / "trainable.safetensors").is_file()

    plain = models.load_model(loaded.source, cfg, dtype=torch.float32)
    before = plain.model.layers[0].mlp.down_proj.weight.detach().clone()
    merged = PeftModel.from_pretrained(plain, tmp_path / "run" / "adapter").merge_and_unload()
    change = (merged.model.layers[0].mlp.down_proj.weight - before).abs().max()
    assert not isinstance(merged.model.layers[0].mlp.down_proj, Linear4bit) and 0 < float(change) < 1
