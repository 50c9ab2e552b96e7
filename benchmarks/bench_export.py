"""Exports side by side on the demo's run: fp32 and bf16 merged, torchao INT8, GGUF q8_0 and (with
llama-cpp-python) q4_k_m, against the baseline measured in the same run: the unmerged adapter (base +
LoRA through PEFT), as r1tune serves it.

For each: export seconds, size on disk, load seconds, answer perplexity over the run's whole test split,
generated tokens/s greedy at 1 client (prompts one after another) and at 16 (one batch of 16 prompts, as
the server's continuous batching runs 16 concurrent clients), and the export's own verification
(greedy agreement with the run, perplexity change, within tolerance or not). Safetensors formats run in
r1tune's builtin engine; GGUF files run in llama.cpp (llama-cpp-python), which decodes one sequence at a
time, so its 16-client figure is its sequential one. Without llama-cpp-python the GGUF rows are skipped.

    .venv/bin/python benchmarks/bench_export.py [--run demo/runs/<id>] [--max-tokens 48]

Results: bench-results/export.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "export.json"
FORMATS = [("adapter (baseline)", None), ("merged fp32", {"fmt": "merged", "dtype": "fp32"}),
           ("merged bf16", {"fmt": "merged", "dtype": "bf16"}), ("int8 (torchao)", {"fmt": "int8"}),
           ("gguf q8_0", {"fmt": "gguf", "quant": "q8_0"}), ("gguf q4_k_m", {"fmt": "gguf", "quant": "q4_k_m"})]


def latest_demo_run() -> Path:
    runs = sorted((ROOT / "demo" / "runs").glob("*/train/adapter"))
    if not runs:
        raise SystemExit("no demo run: run `make demo` first, or pass --run")
    return runs[-1].parent.parent


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def hf_measure(loaded: Any, cfg: Any, records: list[Any], max_tokens: int) -> dict[str, float]:
    from r1tune.models.generation import generate
    from r1tune.models.scoring import per_example_nll

    examples = [loaded.renderer.render_training(r, cfg.train.max_seq_len) for r in records]
    nll = per_example_nll(loaded.model, examples, loaded.tokenizer.pad_token_id, 8, "fp32")
    prompts = [loaded.renderer.render_prompt(r.prompt_messages) for r in records]
    rates = {}
    for clients in (1, 16):
        batch = prompts[:4] if clients == 1 else prompts[:16]
        start = time.perf_counter()
        out = generate(loaded.model, loaded.renderer, batch, max_tokens, batch_size=clients)
        rates[clients] = sum(g.num_tokens for g in out) / (time.perf_counter() - start)
    return {"perplexity": math.exp(sum(v for v, _ in nll) / sum(t for _, t in nll)),
            "tokens_per_s_1": rates[1], "tokens_per_s_16": rates[16]}


def gguf_measure(path: Path, renderer: Any, cfg: Any, records: list[Any], max_tokens: int) -> dict[str, float]:
    from r1tune.export.llama_cpp import read_back

    examples = [renderer.render_training(r, cfg.train.max_seq_len) for r in records]
    prompts = [renderer.render_prompt(r.prompt_messages) for r in records]
    scored = read_back(path, examples, [], max_tokens, renderer.stop_token_ids)
    start = time.perf_counter()
    answers = read_back(path, [], prompts[:4], max_tokens, renderer.stop_token_ids)["answers"]
    tokens = sum(len(renderer.tokenizer(a, add_special_tokens=False).input_ids) for a in answers)
    rate = tokens / (time.perf_counter() - start)
    return {"perplexity": scored["perplexity"], "tokens_per_s_1": rate, "tokens_per_s_16": rate}


def measure_format(run: Any, options: dict | None, work: Path, records: list[Any], max_tokens: int) -> dict[str, Any]:
    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.export import export_run
    from r1tune.export.formats import ExportOptions

    cfg = run.load_config()
    if options is None:
        start = time.perf_counter()
        loaded = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, adapter=run.adapter)
        row = {"size_mb": size_mb(run.adapter), "load_s": time.perf_counter() - start}
        return {**row, **hf_measure(loaded, cfg, records, max_tokens)}
    out = work / f"{options['fmt']}-{options.get('quant', options.get('dtype', ''))}"
    start = time.perf_counter()
    _, check = export_run(run, out, ExportOptions(**options))
    row = {"export_s": time.perf_counter() - start, "size_mb": size_mb(out), "verify": check}
    start = time.perf_counter()
    if options["fmt"] == "gguf":
        renderer = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, with_weights=False).renderer
        row["load_s"] = time.perf_counter() - start  # llama.cpp loads inside the measurement; tokenizer only here
        return {**row, **gguf_measure(next(out.glob("*.gguf")), renderer, cfg, records, max_tokens)}
    loaded = models.load(ModelConfig(name=str(out)))
    row["load_s"] = time.perf_counter() - start
    return {**row, **hf_measure(loaded, cfg, records, max_tokens)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    from r1tune.data.records import read_jsonl
    from r1tune.rundir import open_run

    run = open_run(args.run or latest_demo_run())
    records = list(read_jsonl(run.data / "test.jsonl"))
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        for label, options in FORMATS:
            if options and options["fmt"] == "int8" and importlib.util.find_spec("torchao") is None:
                rows[label] = {"skipped": "torchao is not installed"}
                continue
            if options and options["fmt"] == "gguf" and importlib.util.find_spec("llama_cpp") is None:
                rows[label] = {"skipped": "llama-cpp-python is not installed"}
                continue
            print(f"measuring {label} …", flush=True)
            rows[label] = measure_format(run, options, Path(work), records, args.max_tokens)
            for folder in Path(work).iterdir():  # one export on disk at a time
                shutil.rmtree(folder, ignore_errors=True)
    result = {"run": str(run.path), "test_examples": len(records), "max_tokens": args.max_tokens,
              "machine": platform.processor() or platform.machine(), "rows": rows}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str))
    print_table(rows)


def print_table(rows: dict[str, Any]) -> None:
    base = rows["adapter (baseline)"]
    print("| format | size MB | load s | answer ppl (vs adapter) | tok/s 1 client | tok/s 16 clients | verify |")
    print("|---|---|---|---|---|---|---|")
    for label, row in rows.items():
        if "skipped" in row:
            print(f"| {label} | skipped: {row['skipped']} |||||")
            continue
        check = row.get("verify") or {}
        verdict = "-" if not check else (f"{'pass' if check['passed'] else 'FAIL'}, agree "
                                         f"{100 * check.get('greedy_agreement', 1):.0f}%")
        change = 100 * (row["perplexity"] / base["perplexity"] - 1)
        print(f"| {label} | {row['size_mb']:.0f} | {row['load_s']:.1f} | {row['perplexity']:.3f} ({change:+.2f}%) | "
              f"{row['tokens_per_s_1']:.1f} | {row['tokens_per_s_16']:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
