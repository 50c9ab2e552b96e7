"""Train stage: every tuning method (LoRA, DoRA, QLoRA, full, freeze, prefix, prompt) on answer tokens,
packed, resumable after a crash, on one process or many."""

from r1tune.train.distributed import Launch, is_launched_worker, is_main_process, launch_on_gpus
from r1tune.train.methods import check_method_runnable
from r1tune.train.recipe import TrainResult, render_all, train

__all__ = [
    "Launch", "TrainResult", "check_method_runnable", "is_launched_worker", "is_main_process", "launch_on_gpus", "render_all",
    "train",
]
