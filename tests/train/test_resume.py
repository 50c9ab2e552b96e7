"""Crash safety: a run SIGKILLed while writing a checkpoint resumes from the last complete one and ends
exactly where an uninterrupted run ends (same step, same loss within 1e-4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import product_records

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.errors import ConfigError
from r1tune.train import train

SETTINGS = {"max_steps": 10, "batch_size": 2, "lr": 5e-3, "max_seq_len": 96, "warmup_ratio": 0.2, "precision": "fp32",
            "save_every": 3, "keep_checkpoints": 2, "eval_every": 4, "neftune_alpha": 5.0, "lora_dropout": 0.1,
            "trackers": [], "packing": True}

# The child trains with the same settings and kills itself with SIGKILL halfway through writing the step-6
# checkpoint: its files are staged, the rename that publishes them never happens.
CHILD = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {tests!r})
    from helpers import product_records
    from r1tune import models
    from r1tune.config import ModelConfig, TrainConfig
    from r1tune.train import checkpoint, train

    real_publish = checkpoint.publish
    def publish(root, step):
        if step == 6:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_publish(root, step)
    checkpoint.publish = publish
    torch.set_num_threads(1)
    loaded = models.load(ModelConfig(name={model!r}))
    train(TrainConfig(**{settings!r}), loaded.model, loaded.renderer, product_records(12), product_records(4),
          __import__("pathlib").Path({out!r}), seed=7, default_target_modules=loaded.target_modules,
          show_progress=False)
""")


def _run(model_dir, out_dir, resume=False):
    loaded = models.load(ModelConfig(name=str(model_dir)))
    return train(TrainConfig(**SETTINGS), loaded.model, loaded.renderer, product_records(12), product_records(4),
                 out_dir, seed=7, default_target_modules=loaded.target_modules, show_progress=False, resume=resume)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_llama_dir, tmp_path):
    killed = tmp_path / "killed"
    script = CHILD.format(tests=os.path.dirname(__file__) + "/..", model=str(tiny_llama_dir),
                          settings=SETTINGS, out=str(killed))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # it really died by SIGKILL
    checkpoints = killed / "checkpoints"
    # Saved every 3 steps and at a new best validation (step 4); step 6 was being written.
    assert sorted(p.name for p in checkpoints.iterdir()) == [".tmp-step-000006", "step-000003", "step-000004"]
    assert not (killed / "adapter").exists()

    _, resumed = _run(tiny_llama_dir, killed, resume=True)
    _, straight = _run(tiny_llama_dir, tmp_path / "straight")

    assert resumed.resumed_from == 4 and resumed.steps == straight.steps == 10
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], abs=1e-4)
    assert resumed.val_loss == pytest.approx(straight.val_loss, abs=1e-4)
    rows = [json.loads(line) for line in (killed / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))  # rows the killed run wrote past step 4 were replaced
    straight_losses = [r["loss"] for r in straight.history]
    assert [r["loss"] for r in rows] == pytest.approx(straight_losses, abs=1e-4)
    assert not any(p.name.startswith(".tmp") for p in checkpoints.iterdir())  # the half-written one is gone
    assert (killed / "adapter" / "adapter_model.safetensors").is_file()


def test_restart_without_resume_refuses_to_overwrite_checkpoints(tiny_llama_dir, tmp_path):
    _run(tiny_llama_dir, tmp_path)
    with pytest.raises(ConfigError, match="--resume"):
        _run(tiny_llama_dir, tmp_path)


def test_resume_with_changed_settings_or_nothing_saved_is_refused(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        _run(tiny_llama_dir, tmp_path / "empty", resume=True)
    _run(tiny_llama_dir, tmp_path)
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    with pytest.raises(ConfigError, match="lr changed"):
        train(TrainConfig(**{**SETTINGS, "lr": 1e-3}), loaded.model, loaded.renderer, product_records(12),
              product_records(4), tmp_path, seed=7, default_target_modules=loaded.target_modules,
              show_progress=False, resume=True)


def test_a_deepspeed_checkpoint_is_not_resumed_without_deepspeed(tiny_llama_dir, tmp_path):
    _run(tiny_llama_dir, tmp_path)
    latest = sorted((tmp_path / "checkpoints").iterdir())[-1]
    (latest / "deepspeed").mkdir()  # what a ZeRO run's checkpoint holds instead of optimizer.pt
    (latest / "optimizer.pt").unlink()
    with pytest.raises(ConfigError, match="written under DeepSpeed ZeRO") as refused:
        _run(tiny_llama_dir, tmp_path, resume=True)
    assert "--strategy" in refused.value.hint


def test_cli_resume_without_a_checkpoint_explains_what_to_do(tiny_llama_dir, tmp_path):
    from helpers import write_project
    from typer.testing import CliRunner

    from r1tune.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["prepare", str(write_project(tmp_path, tiny_llama_dir))]).exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    result = runner.invoke(app, ["train", str(run), "--resume", "--no-progress"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "nothing to resume" in str(result.exception)
