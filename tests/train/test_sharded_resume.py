"""A sharded run's checkpoints resume exactly: r1tune's recipe sharded over two CPU processes by accelerate
(FSDP2, or DeepSpeed ZeRO-2/3 through DeepSpeed's CPU accelerator), accumulating 2 micro-batches a step, in
fp32, bf16 and fp16 with loss scaling (FSDP2 only: DeepSpeed's CPU accelerator has no fp16), follows the
trajectory of one process with the same global batch, saves its optimiser (and fp16's loss scale) in the
strategy's own layout, and a run resumed from step 3 ends where the uninterrupted run ends, bit for bit.
Under FSDP the second process never reads the weights (rank 0's reach it as the model is sharded); under
ZeRO-3 no process holds them whole.
A sharded full fine-tune saves the whole model one process saves, a sharded run continues an adapter as
one process does, and DoRA, `freeze` and distillation train under FSDP as in one process. DeepSpeed is the
optional extra `r1tune[deepspeed]`, absent from the default install and CI: there its cases are skipped."""

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
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
NO_DEEPSPEED = pytest.mark.skipif(not HAS_DEEPSPEED, reason="DeepSpeed is the optional extra r1tune[deepspeed]")
PRECISIONS = {"fsdp": ("fp32", "bf16", "fp16"), "zero2": ("fp32", "bf16"), "zero3": ("fp32", "bf16")}
SAVES_FULL, CONTINUES = ("fsdp", "zero2", "zero3"), ("fsdp", "zero3")
OTHER_METHODS = ("dora", "freeze", "distill")  # under FSDP, whose other process reads no weights


def _run(model_dir: Path, jobs: list[dict], jobs_file: Path, launched: bool) -> None:
    """The jobs in one worker invocation: two processes under torchrun, or one plain process."""
    jobs_file.write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if launched else []
    done = subprocess.run([sys.executable, *launcher, str(WORKER), str(model_dir), str(jobs_file)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


def _job(out: Path, strategy: str, precision: str = "fp32", resume: bool = False, **overrides: str) -> dict:
    return {"out": str(out), "strategy": strategy, "precision": precision, "resume": resume, "overrides": overrides}


# How far a sharded run's loss may be from one process's: fp32 sharding only reorders float sums; in bf16,
# DeepSpeed holds the whole module in bf16 (LoRA weights too, an fp32 master copy aside) where one process
# keeps the adapter in fp32 under autocast (step 1 differed by 6.5e-3 of 12.1 in ZeRO-2, 0 in FSDP2).
TOLERANCE = {"fp32": {"abs": 1e-5}, "bf16": {"rel": 1e-3}, "fp16": {"rel": 1e-3}}


@pytest.fixture(scope="module")
def runs(tiny_llama_dir, tmp_path_factory) -> Path:
    """Every run the tests compare, made once (each worker invocation starts its libraries once; a run never
    shares a process with the run that resumes it). `single/`: one process accumulating both processes'
    micro-batches of each step, per precision, `full` and `continued` (from single/fp32's adapter); per
    strategy: `PRECISION/whole` (checkpoints every 3 steps), `PRECISION/resumed` (from whole's step 3),
    `full` and `continued`."""
    root = tmp_path_factory.mktemp("sharded")
    single = root / "single"
    _run(tiny_llama_dir, [*(_job(single / precision, "single", precision) for precision in PRECISIONS["fsdp"]),
                          _job(single / "full", "single", method="full"),
                          *(_job(single / name, "single", **_other(name, tiny_llama_dir)) for name in OTHER_METHODS),
                          _job(single / "continued", "single", init_from=str(single / "fp32" / "adapter"))],
         root / "single.json", launched=False)
    for strategy in ("fsdp", "zero2", "zero3") if HAS_DEEPSPEED else ("fsdp",):
        folder = root / strategy
        whole = [_job(folder / precision / "whole", strategy, precision) for precision in PRECISIONS[strategy]]
        whole += [_job(folder / "full", strategy, method="full")] if strategy in SAVES_FULL else []
        whole += ([_job(folder / "continued", strategy, init_from=str(single / "fp32" / "adapter"))]
                  if strategy in CONTINUES else [])
        whole += ([_job(folder / name, strategy, **_other(name, tiny_llama_dir)) for name in OTHER_METHODS]
                  if strategy == "fsdp" else [])
        _run(tiny_llama_dir, whole, root / f"{strategy}-whole.json", launched=True)
        for precision in PRECISIONS[strategy]:
            _copy_step3(folder / precision / "whole", folder / precision / "resumed")
        _run(tiny_llama_dir, [_job(folder / precision / "resumed", strategy, precision, resume=True)
                              for precision in PRECISIONS[strategy]], root / f"{strategy}-resumed.json", launched=True)
    return root


def _other(name: str, model_dir: Path) -> dict[str, str]:
    """TrainConfig settings of one of OTHER_METHODS; distillation's teacher is the model itself."""
    return {"distill_teacher": str(model_dir)} if name == "distill" else {"method": name}


def _copy_step3(whole: Path, resumed: Path) -> None:
    """A run folder as a run killed after its last step leaves it, with step 3 its newest checkpoint."""
    step3 = whole / "checkpoints" / "step-000003"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(step3, resumed / "checkpoints" / step3.name)
    shutil.copy(whole / "train_metrics.jsonl", resumed / "train_metrics.jsonl")


def _loaded(run: Path) -> list[dict]:
    """What each of a sharded run's two processes reported of its model once built (the worker's file)."""
    return [json.loads((run.parent / f"{run.name}-loaded-rank{rank}.json").read_text()) for rank in (0, 1)]


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
def test_a_sharded_run_resumed_from_its_checkpoint_ends_like_the_uninterrupted_run(strategy, precision, runs):
    whole, resumed = runs / strategy / precision / "whole", runs / strategy / precision / "resumed"
    step3 = whole / "checkpoints" / "step-000003"
    assert _optimizer_files(step3) == _expected_optimizer_files(strategy, precision)
    assert (step3 / "loss_scaler.pt").is_file() == (precision == "fp16")  # DeepSpeed's would be in its own files
    loaded = _loaded(whole)
    assert all(load["partitioned"] == (strategy == "zero3") for load in loaded)  # ZeRO-3: no process held it whole
    assert strategy != "zero3" or all(load["local_elements"] == 0 for load in loaded)
    assert [load["read"] for load in loaded] == [True, strategy != "fsdp"]  # FSDP: rank 0's weights reach rank 1
    uninterrupted = _losses(whole)
    assert sorted(uninterrupted) == list(range(1, 7))
    for step, loss in _losses(runs / "single" / precision).items():
        assert uninterrupted[step] == pytest.approx(loss, **TOLERANCE[precision])
    assert _losses(resumed) == uninterrupted  # steps 4-6 again, bit for bit (5 and 6 need AdamW's moments)


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero2", marks=NO_DEEPSPEED),
                                      pytest.param("zero3", marks=NO_DEEPSPEED)])
def test_a_sharded_full_fine_tune_saves_the_model_one_process_saves(strategy, runs):
    """`method: full` sharded: the whole model gathered from every process (on the main one only under ZeRO-3,
    whose base was partitioned as it loaded), without a tied head's duplicate, equals one process's result."""
    from safetensors.torch import load_file

    sharded, single = runs / strategy / "full", runs / "single" / "full"
    assert _losses(sharded) == pytest.approx(_losses(single), abs=1e-5)
    mine, theirs = (load_file(run / "model" / "model.safetensors") for run in (sharded, single))
    assert mine.keys() == theirs.keys()
    assert all(torch.allclose(mine[name], theirs[name], atol=1e-5) for name in theirs)


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero3", marks=NO_DEEPSPEED)])
def test_a_sharded_run_continues_an_adapter_as_one_process_does(strategy, runs):
    """`train.init_from`, as the improvement loop's retrain uses it: the earlier adapter loads onto the base
    (under ZeRO-3 a base partitioned as it loaded) and training goes on from it, as in one process."""
    continued = _losses(runs / "single" / "continued")
    assert _losses(runs / strategy / "continued") == pytest.approx(continued, abs=1e-5)
    assert continued[1] < _losses(runs / "single" / "fp32")[1] - 1  # it started from the trained adapter


@pytest.mark.parametrize("method", OTHER_METHODS)
def test_other_methods_train_under_fsdp_as_in_one_process(method, runs):
    """DoRA (whose magnitudes start from the base weights' norms), `freeze` (base layers trainable) and logit
    distillation (a teacher every process loads whole), with the second process building the student without
    reading its weights."""
    assert _losses(runs / "fsdp" / method) == pytest.approx(_losses(runs / "single" / method), abs=1e-5)
    assert [load["read"] for load in _loaded(runs / "fsdp" / method)] == [True, False]
    if method == "distill":  # half the loss is the divergence from the teacher, 0 while the student is the base
        assert _losses(runs / "single" / method)[1] == pytest.approx(_losses(runs / "single" / "fp32")[1] / 2)
