"""fp16 training (GPUs without bf16: T4, V100) scales the loss through accelerate's GradScaler. A step whose
gradients overflow must leave the weights and the learning-rate schedule where they were; every step logs the
scale; a checkpoint keeps the scale, so a resumed fp16 run follows the uninterrupted one bit for bit.

r1tune's device plan refuses fp16 on a CPU, and accelerate builds no GradScaler there, so these tests hand the
recipe what a T4 gives it (fp16 precision, accelerate in fp16 with a GradScaler), on the CPU, where torch runs
fp16 autocast and loss scaling. Overflow is made on purpose: the step's loss gradient is multiplied by inf."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import product_records, with_fp16_loss_scaling

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.train import distributed, recipe, train
from r1tune.train.distributed import Runtime

SETTINGS = {"max_steps": 6, "batch_size": 2, "lr": 5e-3, "max_seq_len": 96, "warmup_ratio": 0.5,
            "save_every": 3, "keep_checkpoints": 2, "lora_dropout": 0.0, "trackers": [], "precision": "fp16"}
OVERFLOWING_STEP = 2


class StepCounter:
    """Which optimiser step the next forward belongs to (one forward per step: grad_accum is 1). A resumed run
    starts counting at its first step after the checkpoint."""

    def __init__(self) -> None:
        self.next_step = 1

    def advance(self) -> int:
        self.next_step += 1
        return self.next_step - 1


@pytest.fixture
def fp16_on_cpu(monkeypatch) -> StepCounter:
    """The recipe runs in fp16 with accelerate's loss scaling, and step OVERFLOWING_STEP's gradients overflow."""
    from accelerate import Accelerator

    steps = StepCounter()

    def fp16_runtime(precision: str) -> Runtime:
        return Runtime(with_fp16_loss_scaling(Accelerator(cpu=True), monkeypatch.setattr))

    def objective_overflowing_once(*args):
        built = real_objective(*args)

        def poison(module, inputs, loss):
            if steps.advance() == OVERFLOWING_STEP:
                loss.register_hook(lambda grad: grad * float("inf"))

        built.register_forward_hook(poison)
        return built

    real_objective = recipe._objective
    monkeypatch.setattr(recipe, "resolve_precision", lambda setting: "fp16")
    monkeypatch.setattr(distributed, "start_runtime", fp16_runtime)
    monkeypatch.setattr(recipe, "_objective", objective_overflowing_once)
    return steps


def _train(model_dir, out_dir, resume=False):
    loaded = models.load(ModelConfig(name=str(model_dir)))
    return train(TrainConfig(**SETTINGS), loaded.model, loaded.renderer, product_records(12), [], out_dir, seed=3,
                 default_target_modules=loaded.target_modules, show_progress=False, resume=resume)


def _rows(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "train_metrics.jsonl").read_text().splitlines()]


def test_an_overflowing_step_moves_neither_the_weights_nor_the_schedule(fp16_on_cpu, tiny_llama_dir, tmp_path):
    model, result = _train(tiny_llama_dir, tmp_path / "run")
    rows = result.history
    assert [row["skipped"] for row in rows] == [step == OVERFLOWING_STEP for step in range(1, 7)]
    before, overflowed, after = rows[0], rows[1], rows[2]
    assert overflowed["loss_scale"] == before["loss_scale"] / 2  # backed off
    assert overflowed["lr"] == before["lr"]  # the schedule waited
    assert after["lr"] > overflowed["lr"] and after["loss_scale"] == overflowed["loss_scale"]
    assert all(torch.isfinite(p).all() for p in model.parameters() if p.requires_grad)  # no inf reached a weight
    assert result.precision == "fp16" and all(row["loss"] == row["loss"] for row in rows)


def test_an_fp16_run_resumed_from_its_checkpoint_ends_like_the_uninterrupted_run(fp16_on_cpu, tiny_llama_dir,
                                                                                 tmp_path):
    whole = tmp_path / "whole"
    _train(tiny_llama_dir, whole)
    step3 = whole / "checkpoints" / "step-000003"
    assert (step3 / "loss_scaler.pt").is_file()
    resumed = tmp_path / "resumed"
    shutil.copytree(step3, resumed / "checkpoints" / step3.name)
    shutil.copy(whole / "train_metrics.jsonl", resumed / "train_metrics.jsonl")
    fp16_on_cpu.next_step = 4
    _train(tiny_llama_dir, resumed, resume=True)

    def trajectory(out_dir) -> str:  # as JSON text: step 2's grad_norm is NaN, which equals nothing as a float
        return json.dumps([[row[key] for key in ("step", "loss", "lr", "grad_norm", "loss_scale", "skipped")]
                           for row in _rows(out_dir)])

    assert trajectory(resumed) == trajectory(whole)  # the scale after step 2's overflow carried over
    assert _rows(whole)[3]["loss_scale"] == 2.0**15  # 65536 halved at step 2, not restarted on resume
