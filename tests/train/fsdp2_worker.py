"""Run by torchrun from test_sharding.py: LoRA on a tiny Llama, sharded with FSDP2 over two CPU processes
(gloo), checkpointed after two AdamW steps through r1tune.train.sharding, continued for two more; then a
fresh sharded model restored from that checkpoint takes the same two steps. Rank 0 writes what it saw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import LlamaConfig, LlamaForCausalLM

from r1tune.train.methods import trainable_named_parameters
from r1tune.train.sharding import copy_into, full_values, load_local_optimizer_state, local_optimizer_state


def sharded_lora_model(mesh):
    torch.manual_seed(dist.get_rank() + 10)  # LoRA's random init differs per process: the restore must not care
    base = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=256))
    torch.manual_seed(0)
    base.apply(base._init_weights)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    for layer in model.base_model.model.model.layers:  # the decoder layer is the unit, as accelerate wraps it
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    params = trainable_named_parameters(model)
    return model, params, torch.optim.AdamW(params.values(), lr=0.05)


def steps(model, optimizer, batches):
    losses = []
    for ids in batches:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def main(folder: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    torch.manual_seed(1)
    batches = [torch.randint(0, 256, (2, 16)) for _ in range(4)]
    model, params, optimizer = sharded_lora_model(mesh)
    with torch.no_grad():  # B starts at zero; make the run's values distinct from any fresh init
        for name, p in params.items():
            if "lora_B" in name:
                p.fill_(0.01)
    steps(model, optimizer, batches[:2])
    values = full_values(params)
    if rank == 0:
        save_file(values, folder / "trainable.safetensors")
    torch.save(local_optimizer_state(optimizer), folder / f"optimizer-rank{rank}.pt")
    dist.barrier()
    uninterrupted = steps(model, optimizer, batches[2:])
    final = full_values(params)

    model, params, optimizer = sharded_lora_model(mesh)
    copy_into(params, load_file(folder / "trainable.safetensors"))
    restored = full_values(params)
    load_local_optimizer_state(optimizer, torch.load(folder / f"optimizer-rank{rank}.pt", weights_only=True))
    resumed = steps(model, optimizer, batches[2:])
    resumed_final = full_values(params)
    if rank == 0:
        local = next(iter(params.values()))
        report = {
            "sharded": type(local).__name__ == "DTensor",
            "full_shapes": all(tuple(values[k].shape) == tuple(p.shape) for k, p in params.items()),
            "local_smaller": tuple(local.to_local().shape) != tuple(local.shape),
            "restored_exactly": all(torch.equal(restored[k], values[k]) for k in values),
            "uninterrupted": uninterrupted, "resumed": resumed,
            "same_final_values": all(torch.equal(final[k], resumed_final[k]) for k in final),
        }
        (folder / "report.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
