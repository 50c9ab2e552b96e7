"""Training throughput: the seeds' tutorial recipe against r1tune's default, same data, same epochs, one run.

(a) tutorial: HF `Trainer`, every example padded to `max_length` (the tokenizer's `padding="max_length"`),
    `DataCollatorForLanguageModeling(mlm=False)` (loss on prompt and answer; it also masks every pad id, which
    for SmolLM2 is the `<|im_end|>` the model should learn), LoRA r=8 on q_proj/v_proj, lr 2e-4, fp32,
    micro-batch 4 x grad_accum 2.
(b) r1tune: `train()` with the bundled example's train config (examples/ecommerce/r1tune.yaml) and r1tune's
    defaults: LoRA on all linear layers without dropout, length-grouped batches, bf16 autocast where the CPU
    has it, answer-only loss and logits.

Both see the same records rendered by r1tune's ChatML renderer, with the embedded SmolLM2-135M-Instruct, for
the same epochs. Reported: real (non-pad) tokens per second over the whole training call, wall time, peak
RSS of the training process (each run is its own child process), final validation loss on answer tokens
(same val split, same r1tune `answer_loss` in fp32 for both). Then each lever of (b) is switched off in
turn for a few steps (bf16, answer-only logits, dropout-free LoRA; packing and gradient checkpointing
switched on, to show what packed attention and recomputation cost), and the share of this CPU's bf16 matmul peak that (b) reaches is computed
against a large bf16 matmul timed in the same run.

Targets (issue 4): (b) >= 5x real tokens/s of (a), peak RSS <= (a), val loss <= (a); stretch: 50% of peak.

    .venv/bin/python benchmarks/bench_train.py [--train-records 40] [--epochs 2] [--lever-steps 3]

The tutorial recipe needs ~10 s per 8 examples on 2 cores, so the default subsamples the example's training
split to 40 records (both runs see the same ones) to stay near 10 minutes.

Results: bench-results/bench_train.json and a table on stdout. The CPU may be shared: the table says the
load average before and after, and all numbers are from this one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "bench_train.json"
EXAMPLE = ROOT / "examples" / "ecommerce" / "r1tune.yaml"


# ---------------------------------------------------------------------------------------------------------
# Shared setup (in every child): the example's data, prepared and rendered by r1tune


def _setup(train_records: int, work: Path):
    from r1tune import models
    from r1tune.configfile import load_config
    from r1tune.data import prepare

    cfg = load_config(EXAMPLE)
    data = prepare(cfg.data, work / "data", cfg.project.seed)
    loaded = models.load(cfg.model)
    train = list(data.train)[:train_records]
    return cfg, loaded, train, list(data.val)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _val_loss(model, renderer, val_records, max_len: int) -> float:
    from r1tune.models.scoring import answer_loss

    examples = [renderer.render_training(r, max_len) for r in val_records]
    return answer_loss(model, examples, renderer.tokenizer.pad_token_id, batch_size=8, precision="fp32").mean_nll


def run_tutorial(train_records: int, epochs: float, work: Path) -> dict:
    """(a): the HF Trainer tutorial recipe."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    cfg, loaded, train, val = _setup(train_records, work)
    tok, max_len = loaded.tokenizer, cfg.train.max_seq_len
    ids = [loaded.renderer.render_training(r, max_len).input_ids for r in train]
    padded = tok.pad({"input_ids": ids}, padding="max_length", max_length=max_len)
    dataset = Dataset.from_dict({"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]})
    model = get_peft_model(loaded.model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                    target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(work / "hf"), per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, num_train_epochs=epochs, learning_rate=2e-4,
                             logging_steps=10, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=cfg.project.seed)
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    real = sum(len(x) for x in ids) * epochs
    computed = len(ids) * max_len * epochs
    return {"seconds": seconds, "real_tokens": real, "computed_positions": computed, "cpu_seconds": _cpu_seconds(),
            "real_tokens_per_s": real / seconds, "peak_rss_mib": _peak_rss_mib(),
            "val_loss": _val_loss(model, loaded.renderer, val, max_len), "records": len(ids), "epochs": epochs}


def run_r1tune(train_records: int, epochs: float, work: Path, max_steps: int | None = None,
               overrides: dict | None = None, full_logits: bool = False) -> dict:
    """(b): r1tune's default recipe for the example (or a lever variant of it)."""
    from r1tune.models import scoring
    from r1tune.train import train

    cfg, loaded, records, val = _setup(train_records, work)
    if full_logits:  # the lever "answer-only logits" off: project every position through the LM head
        scoring.decoder_and_head = lambda model: None
    train_cfg = cfg.train.model_copy(update={"epochs": epochs, "max_steps": max_steps, **(overrides or {})})
    start = time.perf_counter()
    model, result = train(train_cfg, loaded.model, loaded.renderer, records, val if max_steps is None else [],
                          work / "train", cfg.project.seed, loaded.target_modules, show_progress=False)
    seconds = time.perf_counter() - start
    real = result.real_tokens
    mean_len = sum(len(loaded.renderer.render_training(r, train_cfg.max_seq_len).input_ids) for r in records)
    # Step throughput without the first step (allocator warm-up), for comparing levers over a few steps.
    steady = [row["tokens_per_s"] for row in result.history[1:]] or [result.tokens_per_s]
    out = {"seconds": seconds, "real_tokens": real, "real_tokens_per_s": real / seconds,
           "step_tokens_per_s": sorted(steady)[len(steady) // 2], "cpu_seconds": _cpu_seconds(),
           "step_seconds": result.step_seconds, "eval_seconds": result.eval_seconds,
           "training_tokens_per_s": real / (seconds - result.eval_seconds), "peak_rss_mib": _peak_rss_mib(), "steps": result.steps,
           "precision": result.precision, "packing": result.packing, "fill_rate": result.fill_rate,
           "records": len(records), "epochs": epochs, "train_flops": _train_flops(model, result, mean_len / len(records))}
    if max_steps is None:
        out["val_loss"] = _val_loss(model, loaded.renderer, val, train_cfg.max_seq_len)
    return out


def _train_flops(model, result, mean_len: float) -> float:
    """Useful FLOPs of the LoRA run: per real token 4 x (frozen body weights: forward + input gradient,
    no weight gradient) + 6 x LoRA weights; attention within each example; the LM head only on answer
    tokens (forward + input gradient)."""
    cfg = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    hidden, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    lora = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
    body = sum(p.numel() for n, p in model.named_parameters() if "layers." in n and not p.requires_grad)
    attention = 3 * 2 * 2 * layers * hidden * mean_len / 2  # QK^T and AV, causal half, forward + 2x backward
    return result.real_tokens * (4 * body + 6 * lora + attention) + result.trained_tokens * 4 * hidden * vocab


def bf16_matmul_peak(seconds: float = 3.0) -> float:
    """FLOP/s of a large bf16 matmul on this CPU (all threads), as the achievable peak."""
    import torch

    a, b = torch.randn(4096, 4096, dtype=torch.bfloat16), torch.randn(4096, 4096, dtype=torch.bfloat16)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * 4096**3 * count / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------
# The parent: one child process per run, so each peak RSS is that run's alone


def _child(kind: str, **kwargs) -> dict:
    with tempfile.TemporaryDirectory() as work:
        spec = json.dumps({"kind": kind, "work": work, **kwargs})
        proc = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        if proc.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-records", type=int, default=40)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lever-steps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        kind, work = spec.pop("kind"), Path(spec.pop("work"))
        runner = run_tutorial if kind == "tutorial" else run_r1tune
        print(json.dumps(runner(work=work, **spec)))
        return

    load_before = os.getloadavg()
    n, epochs, steps = args.train_records, args.epochs, args.lever_steps
    print(f"bench-train: {n} training records x {epochs} epochs; levers over {steps} steps each ...", flush=True)
    results: dict = {"train_records": n, "epochs": epochs}
    results["tutorial"] = _child("tutorial", train_records=n, epochs=epochs)
    results["tutorial"]["training_tokens_per_s"] = results["tutorial"]["real_tokens_per_s"]  # it never validates
    print(f"  (a) tutorial done in {results['tutorial']['seconds']:.0f} s", flush=True)
    results["r1tune"] = _child("r1tune", train_records=n, epochs=epochs)
    print(f"  (b) r1tune done in {results['r1tune']['seconds']:.0f} s", flush=True)
    levers = {
        "with packing (instead of length groups)": {"overrides": {"packing": True}},
        "without bf16 (fp32)": {"overrides": {"precision": "fp32"}},
        "without answer-only logits": {"full_logits": True},
        "with lora_dropout 0.05": {"overrides": {"lora_dropout": 0.05}},
        "with gradient checkpointing": {"overrides": {"gradient_checkpointing": True}},
    }
    results["levers"] = {name: _child("r1tune", train_records=n, epochs=epochs, max_steps=steps, **spec)
                         for name, spec in levers.items()}
    peak = bf16_matmul_peak()
    b, a = results["r1tune"], results["tutorial"]
    achieved = b["train_flops"] / b["step_seconds"]  # FLOPs of the optimiser steps over their time
    results["bf16_matmul_peak_gflops"] = peak / 1e9
    results["r1tune_achieved_gflops"] = achieved / 1e9
    results["r1tune_share_of_peak"] = achieved / peak
    # Training throughput: (b)'s validation passes (the tutorial has none) are left out of its time.
    results["speedup_real_tokens_per_s"] = b["training_tokens_per_s"] / a["training_tokens_per_s"]
    results["speedup_including_validation"] = b["real_tokens_per_s"] / a["real_tokens_per_s"]
    results["targets"] = {
        "speedup >= 5x": results["speedup_real_tokens_per_s"] >= 5,
        "peak RSS <= tutorial": b["peak_rss_mib"] <= a["peak_rss_mib"],
        "val loss <= tutorial": b["val_loss"] <= a["val_loss"],
        "stretch: >= 50% of bf16 matmul peak": results["r1tune_share_of_peak"] >= 0.5,
    }
    results["load_average_before_after"] = [load_before[0], os.getloadavg()[0]]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    _print_table(results)


def _print_table(r: dict) -> None:
    a, b = r["tutorial"], r["r1tune"]
    print(f"\n{'run':<42} {'real tok/s':>10} {'wall s':>7} {'of which val s':>14} {'peak RSS MiB':>12} "
          f"{'val loss':>9}")
    for name, run in (("(a) tutorial (HF Trainer, max_length pad)", a), ("(b) r1tune default", b)):
        print(f"{name:<42} {run['training_tokens_per_s']:>10.0f} {run['seconds']:>7.1f} "
              f"{run.get('eval_seconds', 0):>14.1f} {run['peak_rss_mib']:>12.0f} {run['val_loss']:>9.4f}")
    print(f"\nspeed-up {r['speedup_real_tokens_per_s']:.2f}x ({r['speedup_including_validation']:.2f}x counting (b)'s "
          f"validation) · bf16 matmul peak {r['bf16_matmul_peak_gflops']:.0f} "
          f"GFLOP/s · (b)'s steps reach {r['r1tune_achieved_gflops']:.0f} GFLOP/s = {100 * r['r1tune_share_of_peak']:.1f}%")
    print(f"\n{'lever (step throughput, median)':<40} {'real tok/s':>10} {'peak RSS MiB':>12}")
    print(f"{'(b) r1tune default, all levers on':<40} {b['step_tokens_per_s']:>10.0f} {b['peak_rss_mib']:>12.0f}")
    for name, lever in r["levers"].items():
        print(f"{name:<40} {lever['step_tokens_per_s']:>10.0f} {lever['peak_rss_mib']:>12.0f}")
    print("\ntargets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in r["targets"].items()))
    print(f"load average before/after: {r['load_average_before_after'][0]:.1f} / "
          f"{r['load_average_before_after'][1]:.1f} (2 cores; other work on the machine slows both runs)")


if __name__ == "__main__":
    main()
