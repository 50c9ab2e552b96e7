"""Train stage: LoRA fine-tuning on answer tokens, with progress, metrics and a PEFT adapter at the end."""

from r1tune.train.recipe import TrainResult, train

__all__ = ["TrainResult", "train"]
