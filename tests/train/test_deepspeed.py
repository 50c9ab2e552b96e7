"""DeepSpeed ZeRO-2 and ZeRO-3 checkpoints resume exactly: r1tune's recipe on two CPU processes (DeepSpeed's CPU
accelerator over gloo) saves its optimiser through DeepSpeed's engine, and a run resumed from step 3 ends
where the uninterrupted run ends, bit for bit. DeepSpeed is an optional extra (`r1tune[deepspeed]`), absent from the
default install and CI: there the test is skipped with that reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra r1tune[deepspeed]")

WORKER = Path(__file__).with_name("deepspeed_worker.py")


def _launch(model_dir: Path, out: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(WORKER), str(model_dir), str(out), *extra],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


@pytest.mark.parametrize("stage", [2, 3])
def test_a_zero_run_resumed_from_its_checkpoint_ends_like_the_uninterrupted_run(stage, tiny_llama_dir, tmp_path):
    whole = tmp_path / "whole"
    _launch(tiny_llama_dir, whole, str(stage))
    step3 = whole / "checkpoints" / "step-000003"
    assert (step3 / "deepspeed").is_dir() and not list(step3.glob("optimizer*.pt"))
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(step3, resumed / "checkpoints" / step3.name)
    shutil.copy(whole / "train_metrics.jsonl", resumed / "train_metrics.jsonl")
    _launch(tiny_llama_dir, resumed, str(stage), "resume")
    uninterrupted = _losses(whole)
    assert sorted(uninterrupted) == list(range(1, 7))
    assert _losses(resumed) == uninterrupted  # steps 4-6 again, bit for bit (5 and 6 need AdamW's moments)
