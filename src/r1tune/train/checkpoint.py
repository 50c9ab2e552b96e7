"""Crash-safe checkpoints: everything a run needs to continue exactly where it stopped.

    train/checkpoints/step-000040/
        trainable.safetensors   the parameters that train (LoRA weights: megabytes, not the whole model)
        optimizer.pt            AdamW moments (tensors only; loaded with weights_only=True, never unpickled);
                                an FSDP run has optimizer-rank0.pt ... instead, one per process
        deepspeed/              a DeepSpeed ZeRO run's optimiser instead: its engine's own files (partitions,
                                fp32 master weights, loss scaler), which DeepSpeed writes and unpickles itself
        scheduler.pt            the learning-rate schedule's position
        loss_scaler.pt          fp16 only: the loss scale and its growth counter (a resume that restarted the
                                scale at 65536 would skip or rescale steps the uninterrupted run did not)
        rng-rank0.pt ...        torch (and CUDA) random states of every process: dropout, NEFTune noise
        state.json              step, history, best validation loss, patience, config fingerprint

A checkpoint is written into `.tmp-step-N/`, flushed to disk, then renamed: a kill at any moment leaves
either the complete folder or none (a stale `.tmp-*` is ignored and cleaned). The data position needs no
file: the batch plan is a pure function of the seed and the step (see batching.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tune.errors import ConfigError

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_FILE = "state.json"
LOSS_SCALER_FILE = "loss_scaler.pt"


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def staging_dir(root: Path, step: int) -> Path:
    """Where every process writes its part of checkpoint `step` before the rename."""
    return root / f".tmp-step-{step:06d}"


def write_rng_state(folder: Path, rank: int) -> None:
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, folder / f"rng-rank{rank}.pt")


def restore_rng_state(folder: Path, rank: int) -> None:
    import torch

    path = folder / f"rng-rank{rank}.pt"
    if not path.is_file():
        raise ConfigError(f"{folder} has no random state for process {rank}",
                          hint="resume with the same number of processes as the interrupted run")
    state = torch.load(path, weights_only=True)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_main_files(folder: Path, trainable: dict[str, Any], optimizer: Any, scheduler: Any,
                     state: dict[str, Any]) -> None:
    """The main process's part: whole weights (train/sharding.full_values), the optimiser unless every
    process writes its own shard (`optimizer` None), the schedule, and state.json last."""
    import torch
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in trainable.items()}, folder / "trainable.safetensors")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(scheduler.state_dict(), folder / "scheduler.pt")
    (folder / STATE_FILE).write_text(json.dumps(state, indent=1))


def write_optimizer_shard(folder: Path, optimizer: Any, rank: int) -> None:
    """An FSDP run's optimiser: every process writes its own part (its slices of the AdamW moments)."""
    import torch

    from r1tune.train.sharding import local_optimizer_state

    torch.save(local_optimizer_state(optimizer), folder / f"optimizer-rank{rank}.pt")


def publish(root: Path, step: int) -> Path:
    """Flush the staged checkpoint to disk and rename it into place (atomic on POSIX filesystems)."""
    staged, final = staging_dir(root, step), checkpoint_dir(root, step)
    for file in staged.rglob("*"):  # DeepSpeed's files sit in a subfolder
        if file.is_file():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
    if final.exists():  # re-saving the same step (e.g. periodic and best at once): replace it
        shutil.rmtree(final)
    staged.rename(final)
    _fsync_dir(root)
    return final


def complete_checkpoints(root: Path) -> list[Checkpoint]:
    """Every finished checkpoint under `root`, oldest first (staging folders are not checkpoints)."""
    found = []
    if not root.is_dir():
        return found
    for path in root.iterdir():
        match = STEP_DIR.match(path.name)
        if match and (path / STATE_FILE).is_file():
            state = json.loads((path / STATE_FILE).read_text())
            found.append(Checkpoint(path, int(match.group(1)), state))
    return sorted(found, key=lambda c: c.step)


def prune(root: Path, keep_last: int, keep_steps: set[int]) -> None:
    """Delete all but the newest `keep_last` checkpoints and those in `keep_steps` (the best one)."""
    checkpoints = complete_checkpoints(root)
    newest = {c.step for c in checkpoints[-keep_last:]}
    for c in checkpoints:
        if c.step not in newest and c.step not in keep_steps:
            shutil.rmtree(c.path, ignore_errors=True)


def remove_stale_staging(root: Path) -> None:
    """Half-written checkpoints from a killed run."""
    if root.is_dir():
        for path in root.glob(".tmp-step-*"):
            shutil.rmtree(path, ignore_errors=True)


def load_trainable(path: Path, params: dict[str, Any]) -> None:
    """Copy saved values into the live trainable parameters; names and shapes must match exactly."""
    from safetensors.torch import load_file

    from r1tune.train.sharding import copy_into

    saved = load_file(path / "trainable.safetensors")
    if set(saved) != set(params):
        missing, extra = sorted(set(params) - set(saved))[:3], sorted(set(saved) - set(params))[:3]
        raise ConfigError(f"{path} does not match this model's trainable parameters "
                          f"(missing {missing}, unexpected {extra})",
                          hint="resume with the run's original train.method and model")
    copy_into(params, saved)


def load_optimizer(path: Path, optimizer: Any, rank: int) -> None:
    """The whole optimiser, or this process's shard of it when the run was sharded by FSDP (DeepSpeed's
    engine loads its own: train/distributed.Runtime.load_deepspeed_state)."""
    import torch

    from r1tune.train.sharding import load_local_optimizer_state

    shard = path / f"optimizer-rank{rank}.pt"
    if shard.is_file():
        load_local_optimizer_state(optimizer, torch.load(shard, weights_only=True))
    else:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))


def write_loss_scaler(folder: Path, scaler: Any) -> None:
    import torch

    torch.save(scaler.state_dict(), folder / LOSS_SCALER_FILE)


def load_loss_scaler(path: Path, scaler: Any) -> None:
    """Restore fp16's loss scale. A checkpoint written in bf16 or fp32 has none (`precision: auto` resumed on a
    GPU without bf16): the scale then starts afresh, with a warning, as the run cannot be exact anyway."""
    import torch

    if not (path / LOSS_SCALER_FILE).is_file():
        log.warning("%s was not written in fp16: the loss scale starts again at %g", path, scaler.get_scale())
        return
    scaler.load_state_dict(torch.load(path / LOSS_SCALER_FILE, weights_only=True))


def load_scheduler(path: Path, scheduler: Any) -> None:
    import torch

    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
