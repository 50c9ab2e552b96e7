"""A sharded run's checkpoint holds whole values and restores exactly: FSDP2 over two CPU processes (gloo),
the layout accelerate gives a `--strategy fsdp` run on GPUs, through r1tune.train.sharding. Without
sharding the same functions are the plain operations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from r1tune.train.sharding import copy_into, full_values, load_local_optimizer_state, local_optimizer_state

WORKER = Path(__file__).with_name("fsdp2_worker.py")


def test_fsdp2_checkpoint_restores_the_same_trajectory(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sharded"] and report["local_smaller"] and report["full_shapes"]
    assert report["restored_exactly"] and report["same_final_values"]
    assert report["resumed"] == report["uninterrupted"]  # the same losses, bit for bit


def test_unsharded_parameters_take_the_plain_path():
    model = torch.nn.Linear(3, 2)
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW(params.values(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    values = full_values(params)
    assert all(torch.equal(values[k], p.detach()) and values[k].data_ptr() != p.data_ptr() for k, p in params.items())
    state = local_optimizer_state(optimizer)
    assert state["state"][0]["exp_avg"] is optimizer.state[model.weight]["exp_avg"]  # nothing converted
    with torch.no_grad():
        model.weight.zero_()
    copy_into(params, values)
    assert torch.equal(model.weight.detach(), values["weight"])
    load_local_optimizer_state(optimizer, state)
    assert torch.equal(optimizer.state[model.weight]["exp_avg"], state["state"][0]["exp_avg"])


def test_a_sharded_runs_result_is_saved_from_gathered_values():
    from types import SimpleNamespace

    from r1tune.train.recipe import _whole_state

    params = {"base_model.model.x.lora_A.default.weight": torch.nn.Parameter(torch.ones(2, 2))}
    gathered = {"model.lm_head.weight": torch.zeros(1), "teacher.lm_head.weight": torch.ones(1)}
    sharded = SimpleNamespace(shards_state=True, accelerator=SimpleNamespace(get_state_dict=lambda module: gathered),
                              unwrap=lambda module: module)
    objective = SimpleNamespace(model=SimpleNamespace(all_tied_weights_keys={}))
    adapter = _whole_state(sharded, objective, params, whole_model=False)
    assert adapter.keys() == params.keys() and not adapter[next(iter(params))].requires_grad
    assert _whole_state(sharded, objective, params, whole_model=True) == {"lm_head.weight": gathered["model.lm_head.weight"]}
    assert _whole_state(SimpleNamespace(shards_state=False), objective, params, whole_model=False) is None
    # a tied head is the embeddings: saved once, as save_pretrained saves it unsharded
    gathered["model.model.embed_tokens.weight"] = torch.zeros(1)
    tied = SimpleNamespace(model=SimpleNamespace(all_tied_weights_keys={"lm_head.weight": "model.embed_tokens.weight"}))
    assert _whole_state(sharded, tied, params, whole_model=True).keys() == {"model.embed_tokens.weight"}
    # ZeRO-3 gathers into the main process only: the others get nothing to save
    on_other_rank = SimpleNamespace(shards_state=True, accelerator=SimpleNamespace(get_state_dict=lambda module: None))
    assert _whole_state(on_other_rank, objective, params, whole_model=True) is None
