"""`make bench-peer`: r1tune's training throughput against LLaMA-Factory's, on the same data in the same run.

The set-up of the peer baseline in ../shared/reference/wave2-facts.md §6: SmolLM2-135M-Instruct (the embedded
model's safetensors cache), the first 150 records of each of LLaMA-Factory's own alpaca_en_demo and
alpaca_zh_demo files (its `max_samples: 150` takes the same ones), LoRA r16 alpha 32 on all linear layers,
batch 4 (LLaMA-Factory's count of packed rows), one epoch, cutoff 512, lr 2e-4 with cosine decay and 5%
warm-up, bf16, on this machine's CPU.

(a) LLaMA-Factory 0.9.5 in its best CPU configuration (neat_packing, bf16, no gradient checkpointing), through
    its own CLI from its own venv (`make peer-llamafactory` makes `.venv-peer`). Its real tokens are the
    non-pad positions of the packed dataset its own loader builds; its time is the `train_runtime` it reports.
(b) r1tune in LLaMA-Factory's step shape: `train.packing` (position ids restart per record, so no record
    attends to another, as in neat_packing) with 4 rows of up to 512 tokens per optimiser step, the same
    steps as (a). LLaMA-Factory's `per_device_train_batch_size` counts packed rows, r1tune's `batch_size`
    records, so (b)'s batch_size is 4 x the records r1tune's packer puts in a row (2.0 here: batch_size 8).
    Otherwise r1tune's defaults: the frozen base held in the training dtype the device plan picks (bf16 on
    CPUs with bf16), bf16 autocast with peft's per-layer input casts skipped, attention as matmuls with an
    fp32 softmax (models/attention.py), the frozen head's answer loss block by block (models/head_loss.py),
    freed memory kept for reuse (models/cpu_allocator.py). Its time is that of its optimiser steps
    (collating, forward, backward, update), like LLaMA-Factory's train_runtime; the whole train() call's
    time is kept beside it in the JSON.
(c) r1tune's default batches: no packing, batch_size 4 records of similar length (2.4x as many steps as
    (a), each smaller); the comparison this benchmark made before 2026-12-03.
(d) (b) with the frozen base in fp32 under the same autocast (the CPU default before this comparison).

Each run is its own child process (peak RSS is that run's alone). This machine's speed drifts by tens of
percent over minutes (a shared host), so the runs go in rounds with (a) and (b) in alternating order (a b,
b a, ...) and each round's ratio compares runs minutes apart; (c) follows in every round, (d) with --fp32-row.
Reported per run: real tokens/s, optimiser steps, seconds, peak RSS, mean training loss; per round: each
r1tune run's ratio to (a);
overall: the median of the rounds' ratios against the target of 1.5x. Results: bench-results/bench_peer.json
and a table, with the load average before and after.

    .venv/bin/python benchmarks/bench_peer.py [--rounds 2] [--fp32-row] [--llamafactory-python PY] [--records 150]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "bench_peer.json"
PEER_DATA = ROOT.parent / "shared" / "peer-datasets" / "llamafactory"
FILES = ("alpaca_en_demo", "alpaca_zh_demo")
TARGET = 1.5
PEER, R1TUNE, DEFAULT_BATCHES, FP32 = ("llamafactory", "r1tune", "r1tune-default-batches",
                                      "r1tune-fp32-frozen-weights")
PEER_ROWS_PER_STEP = 4
SEED = 42
CUTOFF = 512  # tokens: LLaMA-Factory's cutoff_len, r1tune's max_seq_len and packed row length
COUNT_TOKENS = """
import sys, yaml
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer
model_args, data_args, training_args, _, _ = get_train_args(yaml.safe_load(open(sys.argv[1])))
tokenizer = load_tokenizer(model_args)
template = get_template_and_fix_tokenizer(tokenizer["tokenizer"], data_args)
rows = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer)["train_dataset"]
print(sum(1 for mask in rows["attention_mask"] for m in mask if m))
"""


def peer_config(model_dir: Path, records: int, out: Path) -> dict:
    return {"model_name_or_path": str(model_dir), "stage": "sft", "do_train": True, "finetuning_type": "lora",
            "lora_rank": 16, "lora_alpha": 32, "lora_target": "all", "dataset": ",".join(FILES),
            "dataset_dir": str(PEER_DATA), "template": "smollm2", "cutoff_len": CUTOFF, "max_samples": records,
            "overwrite_cache": True, "preprocessing_num_workers": 1, "neat_packing": True, "output_dir": str(out),
            "logging_steps": 10, "save_strategy": "no", "overwrite_output_dir": True, "report_to": "none",
            "per_device_train_batch_size": PEER_ROWS_PER_STEP, "gradient_accumulation_steps": 1, "learning_rate": 2.0e-4,
            "num_train_epochs": 1.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "bf16": True,
            "disable_gradient_checkpointing": True, "use_cpu": True}


def run_llamafactory(python: Path, model_dir: Path, records: int, work: Path) -> dict:
    """(a): LLaMA-Factory's CLI in its own venv; its real tokens counted by its own data loader."""
    import yaml

    config = work / "llamafactory.yaml"
    config.write_text(yaml.safe_dump(peer_config(model_dir, records, work / "out")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "DISABLE_VERSION_CHECK": "1"}
    tokens = subprocess.run([str(python), "-c", COUNT_TOKENS, str(config)], capture_output=True, text=True, env=env)
    if tokens.returncode != 0:
        raise SystemExit(f"LLaMA-Factory's data loader failed:\n{tokens.stderr[-3000:]}")
    cli = python.parent / "llamafactory-cli"
    peak, proc = measured([str(cli), "train", str(config)], env)
    if proc.returncode != 0:
        raise SystemExit(f"LLaMA-Factory training failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((work / "out" / "train_results.json").read_text())
    state = work / "out" / "trainer_state.json"  # written at the end of training by LLaMA-Factory's sft workflow
    steps = json.loads(state.read_text())["global_step"] if state.is_file() else None
    real = int(tokens.stdout.strip().splitlines()[-1])
    seconds = float(summary["train_runtime"])
    return {"real_tokens": real, "seconds": seconds, "real_tokens_per_s": real / seconds, "peak_rss_mib": peak,
            "steps": steps, "mean_train_loss": summary["train_loss"]}


def measured(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command; return the peak RSS in MiB over this process's children, which is this command's: the
    only child before it (the token count) loads no model."""
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, proc


def alpaca_records(records: int) -> list:
    """The records LLaMA-Factory reads, as r1tune conversations (its alpaca rule: instruction, newline, input)."""
    from r1tune.data.records import Message, Record

    out = []
    for name in FILES:
        for row in json.loads((PEER_DATA / f"{name}.json").read_text())[:records]:
            prompt = row["instruction"] + (f"\n{row['input']}" if row.get("input") else "")
            out.append(Record([Message("user", prompt), Message("assistant", row["output"])], source=name))
    return out


def run_r1tune(records: int, work: Path, kind: str) -> dict:
    """(b), (c) or (d): r1tune's `train()` with the peer's settings."""
    import torch

    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.config.train import TrainConfig
    from r1tune.models.device import current_plan
    from r1tune.train import train

    loaded = models.load(ModelConfig())
    model = loaded.model.to(torch.float32 if kind == FP32 else current_plan().training_weights_dtype)
    data = alpaca_records(records)
    packing = kind != DEFAULT_BATCHES
    batch_size = peer_step_batch_size(loaded.renderer, data) if packing else PEER_ROWS_PER_STEP
    cfg = TrainConfig(method="lora", lora_rank=16, lora_alpha=32, batch_size=batch_size, epochs=1, max_seq_len=CUTOFF,
                      lr=2e-4, warmup_ratio=0.05, packing=packing)
    start = time.perf_counter()
    _, result = train(cfg, model, loaded.renderer, data, [], work / "train", SEED, loaded.target_modules,
                      show_progress=False)
    wall = time.perf_counter() - start
    losses = [row["loss"] for row in result.history]
    # Like LLaMA-Factory's train_runtime: the optimiser steps (batches collated, forward, backward, update),
    # not the tokenising before them, the adapter's set-up or its saving after them.
    return {"real_tokens": result.real_tokens, "seconds": result.step_seconds,
            "real_tokens_per_s": result.real_tokens / result.step_seconds, "train_call_seconds": round(wall, 2),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "steps": result.steps,
            "batch_size": batch_size, "packing": packing, "precision": result.precision,
            "mean_train_loss": sum(losses) / len(losses)}


def peer_step_batch_size(renderer: Any, data: list) -> int:
    """r1tune's batch_size (records per step, on average) that packs PEER_ROWS_PER_STEP rows per step: the
    packs are those train() builds (same packer and seed); with one row per micro-batch, each is one pack."""
    from r1tune.train.batching import BatchPlan
    from r1tune.train.recipe import render_all

    examples = render_all(renderer, data, CUTOFF)[0]
    packs = BatchPlan(examples, 1, 1, SEED, True, CUTOFF).micro_batches_per_epoch
    return round(PEER_ROWS_PER_STEP * len(examples) / packs)


def child(kind: str, records: int, python: Path | None = None) -> dict:
    """One run in a fresh process of this script, so each peak RSS belongs to that run alone."""
    args = [sys.executable, __file__, "--child", kind, "--records", str(records)]
    if python:
        args += ["--llamafactory-python", str(python)]
    proc = subprocess.run(args, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(kind: str, records: int, python: Path) -> dict:
    with tempfile.TemporaryDirectory() as work:
        if kind == PEER:
            from r1tune.config import ModelConfig
            from r1tune.models.loading import resolve_model_source

            return run_llamafactory(python, Path(resolve_model_source(ModelConfig()).location), records, Path(work))
        return run_r1tune(records, Path(work), kind)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llamafactory-python", type=Path, default=ROOT / ".venv-peer" / "bin" / "python")
    parser.add_argument("--records", type=int, default=150, help="records from each of the two files")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (a) and (b), in alternating order")
    parser.add_argument("--fp32-row", action="store_true", help="run (c) in every round too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.records, args.llamafactory_python)))
        return 0
    if not (args.llamafactory_python.parent / "llamafactory-cli").is_file():
        print(f"bench-peer needs LLaMA-Factory's CLI beside {args.llamafactory_python}: run `make peer-llamafactory` "
              "(a separate venv with llamafactory==0.9.5), or pass --llamafactory-python", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"bench-peer: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    rounds = [one_round(index, args) for index in range(args.rounds)]
    results = {"records_per_file": args.records, "target_ratio": TARGET, "rounds": rounds,
               "median_ratios": {kind: statistics.median(r["ratios"][kind] for r in rounds)
                                 for kind in rounds[0]["ratios"]},
               "load_average_before_after": [load_before, os.getloadavg()[0]]}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print_table(results)
    return 0


def one_round(index: int, args: argparse.Namespace) -> dict:
    """(a) and (b) in this round's order, then (c), then (d) when asked; each run's ratio to this round's (a)."""
    order = (PEER, R1TUNE) if index % 2 == 0 else (R1TUNE, PEER)
    runs = {}
    for kind in order + (DEFAULT_BATCHES,) + ((FP32,) if args.fp32_row else ()):
        print(f"  round {index + 1}: {kind} ...", flush=True)
        runs[kind] = child(kind, args.records, args.llamafactory_python)
    peer = runs[PEER]["real_tokens_per_s"]
    return {"order": list(runs), "runs": runs,
            "ratios": {kind: run["real_tokens_per_s"] / peer for kind, run in runs.items() if kind != PEER}}


def print_table(r: dict) -> None:
    print("\n| round | run | real tokens | real tok/s | steps | seconds | peak RSS MiB | mean train loss | "
          "vs LLaMA-Factory |")
    print("|---|---|---|---|---|---|---|---|---|")
    for number, one in enumerate(r["rounds"], start=1):
        for kind in one["order"]:
            run = one["runs"][kind]
            ratio = f"{one['ratios'][kind]:.2f}x" if kind in one["ratios"] else "baseline"
            print(f"| {number} | {kind} | {run['real_tokens']} | {run['real_tokens_per_s']:.0f} | {run.get('steps')} | "
                  f"{run['seconds']:.1f} | {run['peak_rss_mib']:.0f} | {run['mean_train_loss']:.3f} | {ratio} |")
    medians = ", ".join(f"{kind} {ratio:.2f}x" for kind, ratio in r["median_ratios"].items())
    met = r["median_ratios"][R1TUNE] >= r["target_ratio"]
    before, after = r["load_average_before_after"]
    print(f"\nmedian of the rounds' ratios: {medians}. Target r1tune >= {r['target_ratio']}x LLaMA-Factory's real "
          f"tokens/s: {'met' if met else 'NOT met'}. Load average before/after {before:.1f} / {after:.1f} (2 cores)")


if __name__ == "__main__":
    raise SystemExit(main())
