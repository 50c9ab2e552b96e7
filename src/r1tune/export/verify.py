"""Proof that an export is the same model as its run, not just a file that loads.

The export is loaded back the way a user would load it and compared with the run's own result (base plus
adapter, or the trained weights) on the run's held-out prompts: how far the greedy answers agree and how
much answer perplexity changed. A merged export rounds every weight once (to bf16, or in the fp32 sum
W + BA), and one flipped near-tie token changes the rest of a greedy answer, so whole answers are a poor
test: on the demo's adapter a bf16 export kept perplexity within +0.09% while only 69% of 16 greedy answers
of 48 tokens were identical. Agreement is therefore the shared prefix of the two answers as a share of the
longer one, averaged; identical answers are reported beside it. Tolerances per storage dtype are stated
here and written with the result into the export folder (`verify.json`) and its model card.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from r1tune.rundir import RunDir

log = logging.getLogger(__name__)

# Largest accepted |perplexity change| in percent, and smallest share of identical greedy answers.
TOLERANCE_PCT = {"fp32": 0.1, "bf16": 0.5, "f16": 0.5, "q8_0": 2.0, "int8": 3.0, "q6_k": 3.0, "q5_k_m": 5.0,
                 "q4_k_m": 8.0, "4bit": 8.0}
MIN_AGREEMENT = {"fp32": 0.9, "bf16": 0.8, "f16": 0.8, "q8_0": 0.6, "int8": 0.5, "q6_k": 0.5, "q5_k_m": 0.4,
                 "q4_k_m": 0.3, "4bit": 0.3}
VERIFY_FILE = "verify.json"


def verify_built(run: RunDir, export_dir: Path, built: Any) -> dict[str, Any]:
    """The check that fits what `export/formats.build` wrote: a copied adapter must be byte-identical to the
    run's; weights are loaded back and compared; a GGUF also through llama.cpp when it is installed."""
    if built.stored == "adapter":
        return _same_files(run.adapter, export_dir / built.model_dir)
    return verify_export(run, export_dir / built.model_dir, built.stored, gguf_file=built.gguf_file)


def verify_export(run: RunDir, export_dir: Path, dtype: str, n: int = 16, max_new_tokens: int = 48,
                  gguf_file: str | None = None) -> dict[str, Any]:
    """Compare `export_dir` (or the GGUF file in it, read back dequantised by transformers) with the run's
    result on up to `n` held-out records; never raises on a mismatch (the result says `passed: false` and
    why). A GGUF is prompted with the run's own tokenizer: the check is about the weights."""
    from r1tune import models
    from r1tune.data.records import read_jsonl

    cfg = run.load_config()
    split = next((run.data / f"{s}.jsonl" for s in ("test", "val", "train") if (run.data / f"{s}.jsonl").is_file()
                  and (run.data / f"{s}.jsonl").stat().st_size), None)
    if split is None:
        return {"passed": False, "reason": "the run has no prepared records to compare on", "n": 0}
    records = list(read_jsonl(split))[:n]
    plan = verify_plan(cfg.model)
    run_model = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, **run.trained_weights(),
                            plan=plan)
    results = {"run": _measure(run_model, records, cfg, max_new_tokens)}
    renderer = run_model.renderer
    del run_model  # one model in memory at a time: the run's weights go before the export's load
    results["export"] = _measure(_load_export(cfg, export_dir, gguf_file, plan), records, cfg, max_new_tokens)
    check = _judge(results, dtype, split.name, len(records))
    if gguf_file is not None and _has_llama_cpp():
        check["llama_cpp"] = _llama_cpp_check(renderer, export_dir / gguf_file, records, cfg, results, dtype,
                                              max_new_tokens, split.name)
        check["passed"] = check["passed"] and check["llama_cpp"]["passed"]
    return check


def _measure(loaded: Any, records: list[Any], cfg: Any, max_new_tokens: int) -> dict[str, Any]:
    from r1tune.models.generation import generate
    from r1tune.models.scoring import per_example_nll

    examples = [loaded.renderer.render_training(r, cfg.train.max_seq_len) for r in records]
    nll = per_example_nll(loaded.model, examples, loaded.tokenizer.pad_token_id, 4, "fp32")
    prompts = [loaded.renderer.render_prompt(r.prompt_messages) for r in records]
    answers = [g.text for g in generate(loaded.model, loaded.renderer, prompts, max_new_tokens, batch_size=4)]
    tokens = sum(t for _, t in nll)
    return {"perplexity": math.exp(sum(v for v, _ in nll) / tokens) if tokens else float("nan"),
            "answers": answers, "prompt_ids": prompts}


def _has_llama_cpp() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _llama_cpp_check(renderer: Any, gguf: Path, records: list[Any], cfg: Any, results: dict[str, Any], dtype: str,
                     max_new_tokens: int, split: str) -> dict[str, Any]:
    """The GGUF as llama.cpp runs it (what Ollama and llama-server users get), against the same run results."""
    from r1tune.export.llama_cpp import read_back

    examples = [renderer.render_training(r, cfg.train.max_seq_len) for r in records]
    back = read_back(gguf, examples, results["run"]["prompt_ids"], max_new_tokens, renderer.stop_token_ids)
    back["prompt_ids"] = results["run"]["prompt_ids"]
    return _judge({"run": results["run"], "export": back}, dtype, split, len(records))


def _same_files(source: Path, copy: Path) -> dict[str, Any]:
    """Byte identity of every file of `source` in `copy`."""
    import hashlib

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    files = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    different = [str(f) for f in files if not (copy / f).is_file() or digest(source / f) != digest(copy / f)]
    return {"passed": not different, "method": "byte-identical adapter files", "n": len(files),
            "problems": [f"{f} differs from the run's" for f in different]}


def verify_plan(model_cfg: Any) -> Any:
    """Where the check runs: this machine's device (several GPUs: the model spread over them), in fp32 so
    it measures the export and not the compute dtype's rounding; on GPUs whose free memory cannot hold the
    model in fp32 (a 70B needs 280 GB), in their compute dtype instead."""
    import dataclasses

    from r1tune.models.device import current_plan

    plan = current_plan()
    free = _free_gpu_bytes(plan.gpus) if plan.device == "cuda" else None
    params = _parameter_count(model_cfg) if free is not None else 0
    return dataclasses.replace(plan, compute=check_compute(plan.device, plan.compute, params, free))


def check_compute(device: str, compute: str, params: int, free_gpu_bytes: int | None) -> str:
    """fp32 unless the model's fp32 weights would take more than 80% of the GPUs' free memory (the rest is
    for activations and the KV cache)."""
    if device != "cuda" or free_gpu_bytes is None or 4 * params <= 0.8 * free_gpu_bytes:
        return "fp32"
    log.info("the export check runs in %s: %.0f GB of fp32 weights do not fit in %.0f GB of free GPU memory",
             compute, 4 * params / 1e9, free_gpu_bytes / 1e9)
    return compute


def _free_gpu_bytes(gpus: int) -> int:
    import torch

    return sum(torch.cuda.mem_get_info(i)[0] for i in range(gpus))


def _parameter_count(model_cfg: Any) -> int:
    """The base model's parameters, counted on the meta device (no weights read)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from r1tune.models.loading import resolve_model_source

    source = resolve_model_source(model_cfg)
    config = AutoConfig.from_pretrained(source.location, revision=source.revision,
                                        trust_remote_code=model_cfg.trust_remote_code)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=model_cfg.trust_remote_code)
    model.tie_weights()  # a tied head is the embedding's parameter, counted once
    return sum(p.numel() for p in model.parameters())


def _load_export(cfg: Any, export_dir: Path, gguf_file: str | None, plan: Any) -> Any:
    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.models.loading import load_gguf_model

    if gguf_file is None:
        return models.load(ModelConfig(name=str(export_dir)), plan=plan)
    loaded = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, with_weights=False)
    loaded.model = load_gguf_model(export_dir, gguf_file, plan)
    return loaded


def _judge(results: dict[str, dict[str, Any]], dtype: str, split: str, n: int) -> dict[str, Any]:
    run, export = results["run"], results["export"]
    same_prompts = run["prompt_ids"] == export["prompt_ids"]
    pairs = list(zip(run["answers"], export["answers"], strict=True))
    agreement = sum(_shared_prefix(a, b) for a, b in pairs) / n
    identical = sum(a == b for a, b in pairs) / n
    change = 100.0 * (export["perplexity"] / run["perplexity"] - 1)
    tolerance, minimum = TOLERANCE_PCT[dtype], MIN_AGREEMENT[dtype]
    problems = []
    if not same_prompts:
        problems.append("the export renders prompts to different token ids than the run")
    if abs(change) > tolerance:
        problems.append(f"answer perplexity changed {change:+.2f}% (tolerance ±{tolerance}%)")
    if agreement < minimum:
        problems.append(f"greedy answers agree on {100 * agreement:.0f}% (need {100 * minimum:.0f}%)")
    return {"passed": not problems, "problems": problems, "n": n, "split": split, "dtype": dtype,
            "same_prompt_ids": same_prompts, "greedy_agreement": agreement, "identical_answers": identical,
            "perplexity_run": run["perplexity"], "perplexity_export": export["perplexity"],
            "perplexity_change_pct": change, "tolerance_pct": tolerance, "min_agreement": minimum}


def _shared_prefix(a: str, b: str) -> float:
    """Length of the common prefix as a share of the longer text (1.0 for two empty texts)."""
    longest = max(len(a), len(b))
    if not longest:
        return 1.0
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return same / longest
