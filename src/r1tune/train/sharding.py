"""Exact values out of, and back into, parameters that several processes share out between them.

Under FSDP2 each trainable parameter is a DTensor holding one slice per process, and so is every AdamW
moment; under DeepSpeed ZeRO-3 a parameter's data lives in partitions (`ds_tensor`). A checkpoint therefore
takes each trainable parameter's whole value (a collective: every process calls these functions, in the same
order) and, under FSDP, each process's own optimiser state in its own file (DeepSpeed's partitioned optimiser
goes through its engine's own checkpoint: train/distributed.Runtime.save_deepspeed_state); a resumed run puts
the values back into the same layout. Without sharding every function here is the
plain operation, so one process and DDP take the same path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any


def _is_dtensor(value: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def _is_zero3(param: Any) -> bool:
    return hasattr(param, "ds_tensor")


@contextlib.contextmanager
def _zero3_gathered(params: Iterable[Any], modifier_rank: int | None = None) -> Iterator[None]:
    """ZeRO-3 partitions gathered into whole tensors for the span (a no-op for anything else)."""
    partitioned = [p for p in params if _is_zero3(p)]
    if not partitioned:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=modifier_rank):
        yield


def full_values(params: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's whole value, as a CPU tensor, on every process."""
    with _zero3_gathered(params.values()):
        return {name: (p.full_tensor() if _is_dtensor(p) else p).detach().cpu().clone()
                for name, p in params.items()}


def copy_into(params: dict[str, Any], values: dict[str, Any]) -> None:
    """Put whole `values` back into `params`, each process keeping its own slice."""
    import torch
    from torch.distributed.tensor import distribute_tensor

    with torch.no_grad(), _zero3_gathered(params.values(), modifier_rank=0):
        for name, p in params.items():
            value = values[name].to(dtype=p.dtype)
            if _is_dtensor(p):
                value = distribute_tensor(value.to(p.device), p.device_mesh, p.placements, src_data_rank=None)
            p.copy_(value)


def local_optimizer_state(optimizer: Any) -> dict[str, Any]:
    """This process's optimiser state with plain tensors (a DTensor moment becomes its local slice)."""
    state = optimizer.state_dict()  # its per-parameter dicts are the live ones: copied, never changed
    local = {index: {key: value.to_local() if _is_dtensor(value) else value for key, value in per_param.items()}
             for index, per_param in state.get("state", {}).items()}
    return {**state, "state": local}


def load_local_optimizer_state(optimizer: Any, state: dict[str, Any]) -> None:
    """The inverse of `local_optimizer_state`: local slices become DTensors shaped like their parameter."""
    from torch.distributed.tensor import DTensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, per_param in state.get("state", {}).items():
        param = params[int(index)]
        if not _is_dtensor(param):
            continue
        for key, value in per_param.items():
            if hasattr(value, "shape") and value.shape == param.to_local().shape:
                per_param[key] = DTensor.from_local(value, param.device_mesh, param.placements, run_check=False)
    optimizer.load_state_dict(state)
