"""The gate reaches the live version as a second adapter on the candidate's base: one copy of the base
weights, and exactly the live version's outputs while it is switched on."""

from __future__ import annotations

import torch

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.loop import gate
from r1tune.rundir import RunDir
from tests.helpers import product_records
from tests.serve_helpers import make_adapter_run


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_live_adapter_beside_the_candidate_gives_the_live_versions_outputs(tiny_llama_dir, tmp_path):
    records = product_records(4)
    live = make_adapter_run(tmp_path, "live", tiny_llama_dir, records, seed=1)
    candidate = make_adapter_run(tmp_path, "candidate", tiny_llama_dir, records, seed=2)
    cfg = ModelConfig(name=str(tiny_llama_dir))
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    alone = _logits(models.load(cfg, adapter=live / "train" / "adapter").model, ids)

    both = models.load(cfg, adapter=candidate / "train" / "adapter").model
    candidate_alone = _logits(both, ids)
    assert models.add_named_adapter(both, live / "train" / "adapter", gate.LIVE_ADAPTER)
    with models.adapter_switched(both, gate.LIVE_ADAPTER):
        torch.testing.assert_close(_logits(both, ids), alone)
    torch.testing.assert_close(_logits(both, ids), candidate_alone)  # the candidate is active again
    assert not torch.allclose(alone, candidate_alone)


def test_the_gate_loads_one_base_for_two_adapter_versions(tiny_llama_dir, tmp_path, monkeypatch):
    from r1tune.configfile import load_config

    records = product_records(4)
    live = RunDir(make_adapter_run(tmp_path, "live", tiny_llama_dir, records, seed=1))
    candidate = RunDir(make_adapter_run(tmp_path, "candidate", tiny_llama_dir, records, seed=2))
    cfg = load_config(candidate.path / "config.yaml")
    loads = []
    real_load = models.load
    monkeypatch.setattr(models, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    loaded = models.load(cfg.model, **candidate.trained_weights())
    reach = gate._live_beside(cfg, loaded, live, plan=None)
    assert set(reach) == {"base_context"} and len(loads) == 1
    assert set(loaded.model.peft_config) == {"default", gate.LIVE_ADAPTER}
