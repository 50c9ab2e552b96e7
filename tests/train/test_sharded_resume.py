"""A sharded run's checkpoints resume exactly: r1tune's recipe sharded over two CPU processes by accelerate
(FSDP2, or DeepSpeed ZeRO-2/3 through DeepSpeed's CPU accelerator), accumulating 2 micro-batches a step, in
fp32, bf16 and fp16 with loss scaling (FSDP2 only: DeepSpeed's CPU accelerator has no fp16), follows the
trajectory of one process with the same global batch, saves its optimiser (and fp16's loss scale) in the
strategy's own layout, and a run resumed from step 3 ends where the uninterrupted run ends, bit for bit.
A sharded full fine-tune saves the whole model one process saves. DeepSpeed is the optional extra `r1tune[deepspeed]`, absent from the default install and CI: there its cases
are skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("sharded_recipe_worker.py")
NO_DEEPSPEED = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                  reason="DeepSpeed is the optional extra r1tune[deepspeed]")


def _launch(model_dir: Path, out: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(WORKER), str(model_dir), str(out), *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


# How far a sharded run's loss may be from one process's: fp32 sharding only reorders float sums; in bf16,
# DeepSpeed holds the whole module in bf16 (LoRA weights too, an fp32 master copy aside) where one process
# keeps the adapter in fp32 under autocast (step 1 differed by 6.5e-3 of 12.1 in ZeRO-2, 0 in FSDP2).
TOLERANCE = {"fp32": {"abs": 1e-5}, "bf16": {"rel": 1e-3}, "fp16": {"rel": 1e-3}}


@pytest.fixture(scope="module")
def single_process_run(tiny_llama_dir, tmp_path_factory):
    """The same run in one process, which accumulates both processes' micro-batches of each step, per
    precision and method: its output folder."""
    runs: dict[tuple[str, ...], Path] = {}

    def run(precision: str, *method: str) -> Path:
        if (precision, *method) not in runs:
            out = tmp_path_factory.mktemp(f"single-{precision}") / "run"
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            done = subprocess.run([sys.executable, str(WORKER), str(tiny_llama_dir), str(out), "single", precision,
                                   *method], env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-4000:]
            runs[(precision, *method)] = out
        return runs[(precision, *method)]

    return run


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows}


def _expected_optimizer_files(strategy: str, precision: str) -> list[str]:
    """FSDP: r1tune's file per rank; DeepSpeed: its engine's own checkpoint (named for bf16's optimiser)."""
    if strategy == "fsdp":
        return ["optimizer-rank0.pt", "optimizer-rank1.pt"]
    prefix = "bf16_" if precision == "bf16" else ""
    return [f"deepspeed/{prefix}zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" for rank in (0, 1)]


def _optimizer_files(checkpoint: Path) -> list[str]:
    return sorted(str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*optim*") if p.is_file())


NO_FP16_ON_CPU = pytest.mark.skip(reason="DeepSpeed's CPU accelerator refuses fp16 ('Type fp16 is not supported')")
CASES = [pytest.param(strategy, precision, marks=[*([] if strategy == "fsdp" else [NO_DEEPSPEED]),
                                                  *([NO_FP16_ON_CPU] if strategy != "fsdp" and precision == "fp16" else [])])
         for strategy in ("fsdp", "zero2", "zero3") for precision in ("fp32", "bf16", "fp16")]


@pytest.mark.parametrize(("strategy", "precision"), CASES)
def test_a_sharded_run_resumed_from_its_checkpoint_ends_like_the_uninterrupted_run(strategy, precision, tiny_llama_dir,
                                                                                   tmp_path, single_process_run):
    whole = tmp_path / "whole"
    _launch(tiny_llama_dir, whole, strategy, precision)
    step3 = whole / "checkpoints" / "step-000003"
    assert _optimizer_files(step3) == _expected_optimizer_files(strategy, precision)
    assert (step3 / "loss_scaler.pt").is_file() == (precision == "fp16")  # DeepSpeed's would be in its own files
    loaded = [json.loads((tmp_path / f"whole-loaded-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert all(load["partitioned"] == (strategy == "zero3") for load in loaded)  # ZeRO-3: no process held it whole
    assert strategy != "zero3" or all(load["local_elements"] == 0 for load in loaded)
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(step3, resumed / "checkpoints" / step3.name)
    shutil.copy(whole / "train_metrics.jsonl", resumed / "train_metrics.jsonl")
    _launch(tiny_llama_dir, resumed, strategy, precision, "resume")
    uninterrupted = _losses(whole)
    assert sorted(uninterrupted) == list(range(1, 7))
    for step, loss in _losses(single_process_run(precision)).items():
        assert uninterrupted[step] == pytest.approx(loss, **TOLERANCE[precision])
    assert _losses(resumed) == uninterrupted  # steps 4-6 again, bit for bit (5 and 6 need AdamW's moments)


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero2", marks=NO_DEEPSPEED),
                                      pytest.param("zero3", marks=NO_DEEPSPEED)])
def test_a_sharded_full_fine_tune_saves_the_model_one_process_saves(strategy, tiny_llama_dir, tmp_path,
                                                                     single_process_run):
    """`method: full` sharded: the whole model gathered from every process (on the main one only under ZeRO-3,
    whose base was partitioned as it loaded), without a tied head's duplicate, equals one process's result."""
    from safetensors.torch import load_file

    sharded = tmp_path / "sharded"
    _launch(tiny_llama_dir, sharded, strategy, "fp32", "method=full")
    single = single_process_run("fp32", "method=full")
    assert _losses(sharded) == pytest.approx(_losses(single), abs=1e-5)
    mine, theirs = (load_file(run / "model" / "model.safetensors") for run in (sharded, single))
    assert mine.keys() == theirs.keys()
    assert all(torch.allclose(mine[name], theirs[name], atol=1e-5) for name in theirs)


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero3", marks=NO_DEEPSPEED)])
def test_a_sharded_run_continues_an_adapter_as_one_process_does(strategy, tiny_llama_dir, tmp_path,
                                                                single_process_run):
    """`train.init_from`, as the improvement loop's retrain uses it: the earlier adapter loads onto the base
    (under ZeRO-3 a base partitioned as it loaded) and training goes on from it, as in one process."""
    adapter = single_process_run("fp32") / "adapter"
    sharded = tmp_path / "sharded"
    _launch(tiny_llama_dir, sharded, strategy, "fp32", f"init_from={adapter}")
    continued = _losses(single_process_run("fp32", f"init_from={adapter}"))
    assert _losses(sharded) == pytest.approx(continued, abs=1e-5)
    assert continued[1] < _losses(single_process_run("fp32"))[1] - 1  # it started from the trained adapter
