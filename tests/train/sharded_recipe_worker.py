"""Run by torchrun from test_sharded_resume.py: r1tune's own `train()` sharded over two CPU processes (gloo) by
accelerate the way `r1tune train --gpus 2 --strategy fsdp|zero2|zero3` shards it on GPUs: FSDP2 from the fsdp
section of the accelerate config r1tune writes, DeepSpeed (its CPU accelerator) from the DeepSpeed config r1tune
writes. accelerate runs neither on a CPU, so this worker hands the recipe the Accelerator state a GPU launch
gives it: the sharding type and plugin, and the process ranks. Arguments: the model folder and a JSON
file listing the runs to make, one after another (see `run_job`): each run's precision is
fp32, bf16 or fp16, the last with accelerate's loss scaling as on a GPU without bf16."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator, PartialState
from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin

sys.path.insert(0, str(Path(__file__).parents[1]))
from helpers import product_records, with_fp16_loss_scaling  # noqa: E402

from r1tune import models  # noqa: E402
from r1tune.config import ModelConfig, TrainConfig  # noqa: E402
from r1tune.train import distributed, recipe, train  # noqa: E402

SETTINGS = {"max_steps": 6, "batch_size": 2, "lr": 5e-3, "max_seq_len": 96, "warmup_ratio": 0.2,
            "save_every": 3, "keep_checkpoints": 2, "lora_dropout": 0.0, "trackers": [],
            "packing": True, "grad_accum": 2}  # 2 processes x 2: the epoch's last step has too few micro-batches


def fsdp_accelerator(precision: str) -> Accelerator:
    """accelerate's launcher passes the config's fsdp section on as FSDP_* variables; the plugin reads them."""
    launch = distributed.Launch(gpus=2, strategy="fsdp")
    fsdp = distributed.accelerate_config(launch, precision, None)["fsdp_config"]
    os.environ.update({key.upper(): str(value).lower() if isinstance(value, bool) else str(value)
                       for key, value in fsdp.items()})
    accelerator = Accelerator(cpu=True)  # MULTI_CPU over gloo, the ranks already right
    plugin = FullyShardedDataParallelPlugin()
    for state in (accelerator.state, PartialState()):
        state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    return accelerator


def deepspeed_accelerator(stage: int, precision: str) -> Accelerator:
    config = distributed.deepspeed_config(TrainConfig(**SETTINGS, precision=precision), stage, precision)
    # as accelerate's launcher sets it up from the config r1tune writes (ZeRO-3 partitions weights as they load)
    zero3_init = distributed.accelerate_config(distributed.Launch(2, f"zero{stage}"), precision, Path("ds.json"))[
        "deepspeed_config"]["zero3_init_flag"]
    accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=config, zero3_init_flag=zero3_init))
    for state in (accelerator.state, PartialState()):  # on a CPU accelerate counts one process here
        state.num_processes, state.process_index = dist.get_world_size(), dist.get_rank()
        state.local_process_index = state.process_index
    return accelerator


def run_job(model_dir: str, job: dict) -> None:
    """One training run. `job`: its output folder, strategy ("single": one process, unlaunched, accumulating
    both processes' micro-batches), precision, whether it resumes, and TrainConfig overrides."""
    strategy, precision, out = job["strategy"], job["precision"], Path(job["out"])
    if strategy == "single":
        accelerator = Accelerator(cpu=True)
    elif strategy == "fsdp":
        accelerator = fsdp_accelerator(precision)
    else:
        accelerator = deepspeed_accelerator(int(strategy[-1]), precision)
    started = distributed.Runtime(with_fp16_loss_scaling(accelerator) if precision == "fp16" else accelerator)
    settings = {**SETTINGS, "precision": precision, **job.get("overrides", {})}
    if strategy == "single":
        settings["grad_accum"] = 4
    model_cfg = ModelConfig(name=model_dir)
    loaded = models.load(model_cfg, with_weights=False)
    # after the runtime starts and only where it reads weights, as in loop/pipeline.train_stage (or, with
    # `every_process_reads`, in every process: the baseline of benchmarks/bench_fsdp_load.py)
    started_loading = time.perf_counter()
    loaded.model = models.load_model(loaded.source, model_cfg,
                                     dtype=getattr(torch, job.get("weights_dtype", "float32")),
                                     empty=not (started.reads_weights or job.get("every_process_reads")))
    first = next(loaded.model.parameters())
    facts = {"partitioned": hasattr(first, "ds_id"), "local_elements": first.numel(), "read": not first.is_meta,
             "load_seconds": time.perf_counter() - started_loading, "peak_rss_loaded_mib": _peak_rss_mib()}
    teacher = None
    if "distill_teacher" in settings:  # loaded whole in every process: no strategy shards the teacher
        teacher_cfg = ModelConfig(name=settings["distill_teacher"])
        teacher = models.load_model(models.resolve_model_source(teacher_cfg), teacher_cfg)
    train(TrainConfig(**settings), loaded.model, loaded.renderer, product_records(16), [], out, seed=5,
          default_target_modules=loaded.target_modules, show_progress=False, resume=job.get("resume", False),
          teacher_model=teacher, runtime=started)
    facts["peak_rss_mib"] = _peak_rss_mib()
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}-loaded-rank{started.rank}.json").write_text(json.dumps(facts))


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (over every job it ran)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(model_dir: str, jobs: list[dict]) -> None:
    """The jobs one after another in the same processes (each process starts torch, transformers and peft
    once): accelerate's shared state is reset between them, as a new process would have it."""
    from accelerate.state import AcceleratorState, GradientState

    recipe.resolve_precision = lambda setting: setting  # fp16 on a CPU: r1tune's device plan refuses it
    torch.set_num_threads(1)
    for job in jobs:
        run_job(model_dir, job)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


if __name__ == "__main__":
    main(sys.argv[1], json.loads(Path(sys.argv[2]).read_text()))
