"""Run by torchrun from test_deepspeed.py: r1tune's own `train()` under DeepSpeed ZeRO on two CPU processes
(DeepSpeed's CPU accelerator, gloo), with the config `--strategy zero2|zero3` writes. accelerate turns DeepSpeed
off when asked for a CPU, so this worker hands the recipe the Accelerator a GPU launch gets, with the process
ranks accelerate would read there. Arguments: the model folder, the output folder, the ZeRO stage, and
"resume" to continue from the output folder's newest checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator, PartialState
from accelerate.utils import DeepSpeedPlugin

sys.path.insert(0, str(Path(__file__).parents[1]))
from helpers import product_records  # noqa: E402

from r1tune import models  # noqa: E402
from r1tune.config import ModelConfig, TrainConfig  # noqa: E402
from r1tune.train import distributed, recipe, train  # noqa: E402

ZERO_STAGE = 2  # set from the command line
SETTINGS = {"max_steps": 6, "batch_size": 2, "lr": 5e-3, "max_seq_len": 96, "warmup_ratio": 0.2,
            "precision": "fp32", "save_every": 3, "keep_checkpoints": 2, "lora_dropout": 0.0, "trackers": [],
            "packing": True}


def deepspeed_runtime(precision: str) -> distributed.Runtime:
    cfg = TrainConfig(**SETTINGS)
    plugin = DeepSpeedPlugin(hf_ds_config=distributed.deepspeed_config(cfg, ZERO_STAGE, precision))
    accelerator = Accelerator(deepspeed_plugin=plugin)
    # On a CPU accelerate picks no process-group backend, so it counts one process while DeepSpeed's own
    # world (gloo) holds both: give it the ranks it reads from the process group on GPUs.
    state = PartialState()
    state.num_processes, state.process_index = dist.get_world_size(), dist.get_rank()
    state.local_process_index = state.process_index
    return distributed.Runtime(accelerator)


def main(model_dir: str, out: Path, resume: bool) -> None:
    recipe.start_runtime = deepspeed_runtime
    torch.set_num_threads(1)
    loaded = models.load(ModelConfig(name=model_dir))
    train(TrainConfig(**SETTINGS), loaded.model, loaded.renderer, product_records(16), [], out, seed=5,
          default_target_modules=loaded.target_modules, show_progress=False, resume=resume)


if __name__ == "__main__":
    ZERO_STAGE = int(sys.argv[3])  # noqa: F811 (module level: read by deepspeed_runtime)
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[4:] == ["resume"])
