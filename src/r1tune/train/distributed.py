"""One process or many: the same recipe runs alone, under `torchrun` (CPU, gloo) or `accelerate launch`
(GPUs: DDP, FSDP, DeepSpeed ZeRO-2/3). accelerate reads the launcher's environment and wraps the training
objective accordingly; `r1tune train --gpus N` writes the accelerate (and DeepSpeed) config and launches.

Every process computes the same batch plan and takes its own share of each optimiser step's micro-batches
(see recipe.py), so N processes with `grad_accum` A see exactly what one process sees with A x N.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from r1tune.config import TrainConfig
from r1tune.errors import ConfigError

Strategy = Literal["ddp", "fsdp", "zero2", "zero3"]
STRATEGIES: tuple[str, ...] = ("ddp", "fsdp", "zero2", "zero3")
DEEPSPEED_TAG = "deepspeed"  # the checkpoint's subfolder that DeepSpeed's engine writes and reads


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a launched run (usable before any runtime exists)."""
    return int(os.environ.get("RANK", "0")) == 0


def is_launched_worker() -> bool:
    """True inside a process started by torchrun / accelerate launch."""
    return "LOCAL_RANK" in os.environ


@dataclass
class Runtime:
    """The accelerate handle plus the few collective operations the recipe needs."""

    accelerator: Any

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> Any:
        return self.accelerator.device

    @property
    def uses_deepspeed(self) -> bool:
        return self.accelerator.state.deepspeed_plugin is not None

    @property
    def shards_state(self) -> bool:
        """Parameters or optimiser state are split between processes (FSDP, DeepSpeed ZeRO): every process
        takes part in saving them (train/sharding.py)."""
        from accelerate.utils import DistributedType

        return self.uses_deepspeed or self.accelerator.distributed_type == DistributedType.FSDP

    @property
    def reads_weights(self) -> bool:
        """Whether this process reads the base weights. Under FSDP only the main process does: the others
        build the model on the meta device and accelerate's sharding hands them rank 0's values
        (`fsdp_cpu_ram_efficient_loading`), so a base converted as it loads (an fp32 checkpoint held in bf16)
        is not a private copy in every process (`make bench-fsdp-load`)."""
        from accelerate.utils import DistributedType

        return self.is_main or self.accelerator.distributed_type != DistributedType.FSDP

    def prepare(self, module: Any, optimizer: Any) -> tuple[Any, Any]:
        return self.accelerator.prepare(module, optimizer)

    def sync_gradients_on(self, module: Any, sync: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on all but the last micro-batch of a step. Under DeepSpeed, mark
        which micro-batch ends the accumulation instead: accelerate steps the engine after every backward
        it takes for a syncing one."""
        if self.uses_deepspeed:
            return self._deepspeed_boundary(sync)
        if sync or self.world_size == 1:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(module)

    @contextlib.contextmanager
    def _deepspeed_boundary(self, sync: bool) -> Iterator[None]:
        self.accelerator.sync_gradients = sync
        try:
            yield
        finally:
            self.accelerator.sync_gradients = True

    def backward(self, loss: Any) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm(self, module: Any, max_norm: float) -> Any:
        """Unscale fp16 gradients, clip, and return the norm before clipping: a tensor on the device, read
        by the caller once the step's work is done (reading it here would make the host wait for the
        backward pass before it queues the update), or None where the engine clips (DeepSpeed). Hands
        accelerate all of the prepared module's parameters (frozen ones have no gradient and are skipped):
        under FSDP accelerate unscales first and clips only a list equal to the module's parameters; any
        other list falls through to its general branch, which unscales again and fails in fp16."""
        return self.accelerator.clip_grad_norm_(list(module.parameters()), max_norm)

    @property
    def loss_scaler(self) -> Any:
        """fp16's GradScaler (accelerate's), whose scale a checkpoint must keep for an exact resume; None in
        bf16 and fp32, and under DeepSpeed, whose engine keeps its own scaler in its own checkpoint."""
        return self.accelerator.scaler

    def optimizer_step(self, optimizer: Any) -> tuple[bool, float | None]:
        """Step the optimiser; returns whether fp16's overflow check skipped the update (the learning-rate
        schedule must then wait) and fp16's loss scale after it (None without a GradScaler). The skip is read
        from the scale, which backs off exactly when inf/NaN gradients were found: accelerate's
        `optimizer_step_was_skipped` misses it for fused AdamW, which takes the overflow flag into its own
        kernel and so is always called. DeepSpeed reports its own engine's overflow."""
        scaler = self.loss_scaler
        if scaler is None:
            optimizer.step()
            return bool(self.accelerator.optimizer_step_was_skipped), None
        before = scaler.get_scale()
        optimizer.step()
        after = scaler.get_scale()
        return after < before, after

    def sum(self, value: float) -> float:
        if self.world_size == 1:
            return value
        import torch

        return float(self.accelerator.reduce(torch.tensor([value], device=self.device), reduction="sum")[0])

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def unwrap(self, module: Any) -> Any:
        return self.accelerator.unwrap_model(module)

    def save_deepspeed_state(self, folder: Path) -> None:
        """DeepSpeed's own checkpoint of the trainable state (optimiser partitions, fp32 master weights, loss
        scaler) into `folder/DEEPSPEED_TAG`. A ZeRO optimiser's state dict is no torch optimiser's and only its
        engine reads it back (`load_state_dict` wants every rank's dicts). Collective: every process calls it."""
        engine = self.accelerator.deepspeed_engine_wrapped.engine
        engine.save_checkpoint(str(folder), tag=DEEPSPEED_TAG, save_latest=False, exclude_frozen_parameters=True)

    def load_deepspeed_state(self, folder: Path) -> None:
        """The inverse of `save_deepspeed_state` (the frozen weights are the model's own: not strict)."""
        engine = self.accelerator.deepspeed_engine_wrapped.engine
        loaded, _ = engine.load_checkpoint(str(folder), tag=DEEPSPEED_TAG, load_module_strict=False,
                                           load_optimizer_states=True, load_lr_scheduler_states=False)
        if loaded is None:
            raise ConfigError(f"{folder / DEEPSPEED_TAG} holds no DeepSpeed checkpoint",
                              hint="resume with the strategy the interrupted run used")


def give_storage_to_meta_trainables(model: Any, device: Any) -> int:
    """On a process that did not read the weights (Runtime.reads_weights), the trainable parameters get
    storage of their own before the optimiser is built: accelerate finds each optimiser parameter's sharded
    successor by its storage address, which every meta tensor shares (0). Their values do not matter: the
    sharding overwrites them with rank 0's. Frozen weights stay on the meta device. Returns how many."""
    import torch

    given: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and param.is_meta and param.requires_grad:
                if id(param) not in given:  # a tied parameter gets one storage, still shared
                    given[id(param)] = torch.nn.Parameter(torch.empty_like(param, device=device))
                module._parameters[name] = given[id(param)]
    return len(given)


def start_runtime(precision: str = "fp32") -> Runtime:
    """fp16 training hands loss scaling to accelerate (its GradScaler: scaled backward, unscaled clipping,
    steps skipped on overflow); bf16 and fp32 need none, and the recipe's own autocast covers bf16."""
    import torch
    from accelerate import Accelerator

    return Runtime(Accelerator(cpu=not torch.cuda.is_available(),
                               mixed_precision="fp16" if precision == "fp16" else "no"))


# ---------------------------------------------------------------------------------------------------------
# Launching on several GPUs


@dataclass(frozen=True)
class Launch:
    """Where a training run spreads: `gpus` per machine, on `nodes` machines (this one is `node_rank`; every
    machine runs the same command with its own rank, rank 0's address as `main_address`)."""

    gpus: int
    strategy: Strategy = "ddp"
    nodes: int = 1
    node_rank: int = 0
    main_address: str | None = None
    main_port: int = 29500

    def check(self, available: int) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}", hint=f"choose one of: {', '.join(STRATEGIES)}")
        if self.gpus < 1 or available < self.gpus:
            raise ConfigError(f"--gpus {self.gpus} asks for more CUDA GPUs than this machine has ({available})",
                              hint="drop --gpus to train in this process (CPU or one GPU)")
        if self.nodes < 1 or not 0 <= self.node_rank < self.nodes:
            raise ConfigError(f"--node-rank {self.node_rank} is outside 0..{self.nodes - 1} (--nodes {self.nodes})")
        if self.nodes > 1 and not self.main_address:
            raise ConfigError("--nodes > 1 needs --main-address (the rank-0 machine's address, reachable from all)")
        if self.strategy.startswith("zero") and shutil.which("deepspeed") is None:
            raise ConfigError(f"--strategy {self.strategy} needs DeepSpeed", hint="pip install 'r1tune[deepspeed]'")


def accelerate_config(launch: Launch, precision: str, deepspeed_file: Path | None) -> dict:
    """The accelerate config (as `accelerate config` would write it) for `launch.nodes` machines with
    `launch.gpus` GPUs each."""
    strategy = launch.strategy
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "num_machines": launch.nodes, "machine_rank": launch.node_rank,
        "num_processes": launch.gpus * launch.nodes,
        "gpu_ids": "all", "mixed_precision": precision if precision in ("bf16", "fp16") else "no", "use_cpu": False,
        "rdzv_backend": "static", "same_network": True, "main_training_function": "main",
    }
    if launch.nodes > 1:
        config.update(main_process_ip=launch.main_address, main_process_port=launch.main_port)
    if strategy == "ddp":
        config["distributed_type"] = "MULTI_GPU"
    elif strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # the model's block class
            "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_reshard_after_forward": True,
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,  # see Runtime.reads_weights
        }
    else:
        config["distributed_type"] = "DEEPSPEED"
        # ZeRO-3: the base is partitioned as it loads (deepspeed.zero.Init), so no process ever holds it whole
        # (a 70B in bf16 is 140 GB); the runtime must start before the weights load (loop/pipeline.train_stage)
        config["deepspeed_config"] = {"deepspeed_config_file": str(deepspeed_file),
                                      "zero3_init_flag": strategy == "zero3"}
        config.pop("mixed_precision")  # DeepSpeed takes it from its own file
    return config


def deepspeed_config(cfg: TrainConfig, stage: int, precision: str) -> dict:
    """ZeRO stage 2 or 3; micro-batch, accumulation and clipping mirror the r1tune config (DeepSpeed
    accumulates and clips itself, so these must agree with the recipe's)."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.max_grad_norm,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0},  # 0: dynamic loss scaling
        "zero_optimization": zero,
        "steps_per_print": 10**9,
    }


def write_launch_config(folder: Path, cfg: TrainConfig, launch: Launch, precision: str) -> Path:
    """Write `accelerate.yaml` (and `deepspeed.json` for ZeRO) into `folder`; returns the accelerate file.
    `precision` is the resolved one (`bf16`, `fp16` or `fp32`, models/device.py)."""
    if launch.strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {launch.strategy!r}", hint=f"choose one of: {', '.join(STRATEGIES)}")
    folder.mkdir(parents=True, exist_ok=True)
    ds_file = None
    if launch.strategy.startswith("zero"):
        ds_file = folder / "deepspeed.json"
        ds_file.write_text(json.dumps(deepspeed_config(cfg, int(launch.strategy[-1]), precision), indent=2))
    path = folder / "accelerate.yaml"
    path.write_text(yaml.safe_dump(accelerate_config(launch, precision, ds_file), sort_keys=False))
    return path


def launch_command(config_file: Path, run_dir: Path, resume: bool) -> list[str]:
    """`accelerate launch` running `r1tune train RUN` in every process."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
           "-m", "r1tune", "train", str(run_dir), "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def torchrun_command(run_dir: Path, processes: int, resume: bool = False) -> list[str]:
    """Several CPU processes (gloo) on this machine: how the distributed path is tested without GPUs."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "r1tune", "train", str(run_dir), "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def launch_on_gpus(cfg: TrainConfig, run_dir: Path, launch: Launch, resume: bool) -> int:
    """Check the GPUs, write the launch config under the run's train folder, launch, return the exit code."""
    import torch

    from r1tune.models.precision import resolve_precision

    launch.check(torch.cuda.device_count())
    config_file = write_launch_config(run_dir / "train" / "launch", cfg, launch, resolve_precision(cfg.precision))
    return subprocess.run(launch_command(config_file, run_dir, resume), check=False).returncode
