"""Serving: r1tune's OpenAI-compatible server vs the seeds' naive endpoint, same model, same run.

The naive endpoint is the seeds' recipe: a FastAPI route that calls `model.generate` for each request under
a lock (no batching; it does not stream, so its time to first token is its latency). It runs the model in the
same dtype and with the same number of torch threads as r1tune's server, on the same prompt token ids,
greedy, with the same token limit. Its linear layers are plain `nn.Linear`: pre-packing them
(`serve.pack_weights`) is part of what r1tune's server does and is measured as such.

r1tune's server is started with `r1tune serve` on a generated project (the embedded SmolLM2-135M, default
settings: continuous batching up to 16, PII scrubbing, completion logging to SQLite), and is driven with
streaming requests, so its time to first token is measured at the first streamed text.

For 1, 4 and 16 concurrent clients (each sends `--requests-per-client` requests one after another), both
servers are measured level by level, alternating, so a change in background load hits both alike:
generated tokens/s (all completion tokens / wall time), time to first token and p50/p95 latency.
The whole sweep runs `--rounds` times, each round with the other server first. Each figure pools all
rounds: total tokens over total wall time, and percentiles over every request. Single runs of the same
level were 10% apart on this machine, which is as large as the margins the targets leave. Each round's
tokens/s is kept in the JSON too.

Structured output (`response_format: json_schema`, grammar-constrained decoding) is measured on r1tune's
server alone, one client: for each prompt a JSON request, then a free-text request (the baseline, same run)
for the same prompt and exactly as many tokens as the JSON answer had; the difference in latency per token
is the grammar's cost. Every JSON answer is parsed and validated against the schema; the valid count is
reported.

Targets (issue 6): at 16 clients ≥ 8× the naive throughput and p95 latency ≤ 1/4 of the naive p95; at 1
client, tokens/s no worse than naive.

    .venv/bin/python benchmarks/bench_serve.py [--max-tokens 64] [--requests-per-client 2] [--threads N]

Results: bench-results/serve.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "serve.json"
LEVELS = (1, 4, 16)
COLORS = ("blue", "red", "green", "black", "white", "yellow", "grey", "brown")
ITEMS = ("ceramic mug", "wool scarf", "brass lamp", "leather bag", "steel kettle", "linen pillow", "oak chair",
         "glass vase")


def prompts() -> list[str]:
    return [f"Write a product description for a {color} {item} for our online shop."
            for color in COLORS for item in ITEMS]


# -- the naive endpoint (runs in its own process) ---------------------------------------------------------


class GenerateRequest(BaseModel):
    prompt: str
    max_new_tokens: int = 64



def naive_server(port: int, threads: int | None) -> None:
    """The seeds' endpoint: one `model.generate` per request, serialised by a lock."""
    import threading

    import torch
    import uvicorn
    from fastapi import FastAPI

    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.data import Message
    from r1tune.models.precision import resolve_precision
    from r1tune.serve.runtime import load_serving_model

    if threads:
        torch.set_num_threads(threads)
    loaded = models.load(ModelConfig(), with_weights=False)
    # the seeds' model: same dtype as r1tune's server, but plain linear layers (packing is r1tune's own)
    model = load_serving_model(loaded.source, ModelConfig(), resolve_precision("auto"), pack_weights=False)
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/generate")
    def generate(req: GenerateRequest) -> dict:
        ids = torch.tensor([loaded.renderer.render_prompt([Message("user", req.prompt)])])
        with lock, torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=req.max_new_tokens,
                                 do_sample=False, eos_token_id=loaded.renderer.stop_token_ids,
                                 pad_token_id=loaded.tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        stops = set(loaded.renderer.stop_token_ids)
        n = next((i + 1 for i, t in enumerate(new) if t in stops), len(new))
        return {"text": loaded.tokenizer.decode(new[:n], skip_special_tokens=True), "completion_tokens": n}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- clients ----------------------------------------------------------------------------------------------


async def naive_request(client, url: str, prompt: str, max_tokens: int) -> dict:
    start = time.perf_counter()
    response = await client.post(url + "/generate", json={"prompt": prompt, "max_new_tokens": max_tokens})
    response.raise_for_status()
    latency = time.perf_counter() - start
    return {"latency": latency, "ttft": latency, "tokens": response.json()["completion_tokens"]}


async def r1tune_request(client, url: str, prompt: str, max_tokens: int, model: str) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            payload = json.loads(line[6:])
            if "error" in payload:
                raise RuntimeError(payload["error"]["message"])
            if payload.get("usage"):
                tokens = payload["usage"]["completion_tokens"]
            for choice in payload.get("choices", []):
                delta = choice.get("delta", {})
                if ttft is None and (delta.get("content") or delta.get("reasoning_content")):
                    ttft = time.perf_counter() - start
    latency = time.perf_counter() - start
    return {"latency": latency, "ttft": ttft if ttft is not None else latency, "tokens": tokens}


PRODUCT_SCHEMA = {
    "type": "object",
    "properties": {"product": {"type": "string", "maxLength": 40},
                   "category": {"enum": ["kitchen", "clothing", "home", "garden"]},
                   "price_eur": {"type": "number", "minimum": 0},
                   "features": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3}},
    "required": ["product", "category", "price_eur", "features"], "additionalProperties": False,
}


async def structured_pair(client, url: str, prompt: str, max_tokens: int, model: str) -> dict:
    """A json_schema request, then a free-text request for the same prompt with `max_tokens` set to the
    JSON answer's length: same prompt, same number of tokens, so the time difference is the grammar's."""
    import jsonschema

    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    json_format = {"type": "json_schema", "json_schema": {"name": "card", "schema": PRODUCT_SCHEMA}}
    out = {}
    for mode in ("json", "free"):
        extra = {"response_format": json_format, "max_tokens": max_tokens} if mode == "json" else \
            {"max_tokens": out["json"]["tokens"]}
        start = time.perf_counter()
        response = await client.post(url + "/v1/chat/completions", json={**body, **extra})
        latency = time.perf_counter() - start
        response.raise_for_status()
        answer = response.json()
        tokens = answer["usage"]["completion_tokens"]
        valid = None
        if mode == "json":
            try:
                jsonschema.validate(json.loads(answer["choices"][0]["message"]["content"]), PRODUCT_SCHEMA)
                valid = True
            except (ValueError, jsonschema.ValidationError):
                valid = False
        out[mode] = {"ms_per_token": 1000 * latency / max(1, tokens), "tokens": tokens, "valid": valid}
    return out


async def measure_structured(url: str, model: str, texts: list[str], n: int, max_tokens: int) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=httpx.Timeout(600)) as http:
        await structured_pair(http, url, texts[0], max_tokens, model)  # warm-up: compiles the grammar
        pairs = [await structured_pair(http, url, texts[i % len(texts)], max_tokens, model) for i in range(n)]
    free = statistics.median(p["free"]["ms_per_token"] for p in pairs)
    constrained = statistics.median(p["json"]["ms_per_token"] for p in pairs)
    return {"requests_each": n, "free_ms_per_token_median": round(free, 2),
            "json_ms_per_token_median": round(constrained, 2), "overhead_ms_per_token": round(constrained - free, 2),
            "json_valid": sum(bool(p["json"]["valid"]) for p in pairs),
            "json_tokens_mean": round(statistics.fmean(p["json"]["tokens"] for p in pairs), 1)}


async def run_level(send, clients: int, per_client: int, texts: list[str]) -> tuple[list[dict], list[str], float]:
    """`clients` concurrent clients, each sending `per_client` requests back to back: (results, errors, wall)."""
    import httpx

    results: list[dict] = []
    errors: list[str] = []

    async def one_client(index: int, http) -> None:
        for j in range(per_client):
            prompt = texts[(index * per_client + j) % len(texts)]
            try:
                results.append(await send(http, prompt))
            except Exception as err:  # counted, reported, never hidden
                errors.append(f"{type(err).__name__}: {err}")

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800), limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(one_client(i, http) for i in range(clients)))
        wall = time.perf_counter() - start
    return results, errors, wall


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(rounds: list[tuple[list[dict], list[str], float]]) -> dict:
    """One level of one server over all rounds: pooled tokens/s and latency percentiles."""
    results = [r for res, _, _ in rounds for r in res]
    errors = [e for _, errs, _ in rounds for e in errs]
    wall = sum(w for _, _, w in rounds)
    tokens = sum(r["tokens"] for r in results)
    latencies = [r["latency"] for r in results]
    ttfts = [r["ttft"] for r in results]
    return {
        "requests": len(results), "errors": len(errors), "error_samples": errors[:3], "wall_s": round(wall, 2),
        "completion_tokens": tokens, "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
        "ttft_p50_s": round(percentile(ttfts, 0.5), 3), "ttft_p95_s": round(percentile(ttfts, 0.95), 3),
        "latency_p50_s": round(percentile(latencies, 0.5), 3), "latency_p95_s": round(percentile(latencies, 0.95), 3),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else float("nan"),
        "tokens_per_s_by_round": [round(sum(r["tokens"] for r in res) / w, 2) if w else 0.0 for res, _, w in rounds],
    }


# -- orchestration ----------------------------------------------------------------------------------------


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server {proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server {proc.args} did not start")


def write_project(folder: Path, threads: int | None) -> Path:
    (folder / "data.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    serve = "serve: {max_tokens_limit: 4096" + (f", threads: {threads}" if threads else "") + "}\n"
    config = folder / "r1tune.yaml"
    config.write_text("project: {name: bench-serve}\ndata: {sources: [{path: data.jsonl}]}\n" + serve)
    return config


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--single-client-requests", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="repeat the sweep, alternating which server goes first")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in both servers (default: r1tune's default, cores - 1)")
    parser.add_argument("--structured-requests", type=int, default=8,
                        help="free-text / json_schema request pairs for the structured-output overhead")
    parser.add_argument("--only-structured", action="store_true", help="skip the naive comparison")
    parser.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        naive_server(args.port, args.threads)
        return

    if args.threads is None:  # r1tune's server picks its default; the naive endpoint gets the same count
        from r1tune.serve.server import default_threads

        args.threads = default_threads()
        server_threads = None
    else:
        server_threads = args.threads
    from r1tune.serve.server import free_port

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    texts = prompts()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        project = write_project(Path(tmp), server_threads)
        naive_port, r1_port = free_port(), free_port()
        naive_url, r1_url = f"http://127.0.0.1:{naive_port}", f"http://127.0.0.1:{r1_port}"
        threads = ["--threads", str(args.threads)] if args.threads else []
        naive = start([sys.executable, __file__, "--naive-server", "--port", str(naive_port), *threads], env)
        r1 = start([sys.executable, "-m", "r1tune", "serve", str(project), "--port", str(r1_port)], env)
        try:
            wait_healthy(naive_url, naive)
            wait_healthy(r1_url, r1)
            import httpx

            model = httpx.get(r1_url + "/v1/models").json()["data"][0]["id"]
            max_tokens = args.max_tokens
            naive_send = lambda http, p: naive_request(http, naive_url, p, max_tokens)  # noqa: E731
            r1_send = lambda http, p: r1tune_request(http, r1_url, p, max_tokens, model)  # noqa: E731
            for send in (naive_send, r1_send):  # warm-up, not measured
                asyncio.run(run_level(send, 1, 1, texts))
            structured = asyncio.run(measure_structured(r1_url, model, texts, args.structured_requests, 160))
            print(f"structured output: {structured}", flush=True)
            if args.only_structured:
                OUT.parent.mkdir(parents=True, exist_ok=True)
                OUT.with_name("serve-structured.json").write_text(json.dumps(structured, indent=2))
                return
            raw: dict[tuple[str, int], list] = {}
            for round_ in range(args.rounds):
                order = [("naive", naive_send), ("r1tune", r1_send)]
                for clients in LEVELS:
                    per_client = args.single_client_requests if clients == 1 else args.requests_per_client
                    for name, send in order if round_ % 2 == 0 else order[::-1]:
                        print(f"… round {round_ + 1}: {name}, {clients} client(s) × {per_client} request(s)",
                              flush=True)
                        raw.setdefault((name, clients), []).append(
                            asyncio.run(run_level(send, clients, per_client, texts)))
            results = {name: {str(c): summarize(raw[(name, c)]) for c in LEVELS} for name in ("naive", "r1tune")}
        finally:
            for proc in (naive, r1):
                proc.terminate()
            for proc in (naive, r1):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    report = build_report(results, args, load_before)
    report["structured_output"] = structured
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwrote {OUT}")


def build_report(results: dict, args: argparse.Namespace, load_before: tuple) -> dict:
    import torch

    naive16, r16 = results["naive"]["16"], results["r1tune"]["16"]
    naive1, r1 = results["naive"]["1"], results["r1tune"]["1"]
    speedup16 = r16["tokens_per_s"] / naive16["tokens_per_s"] if naive16["tokens_per_s"] else float("nan")
    p95_ratio = r16["latency_p95_s"] / naive16["latency_p95_s"] if naive16["latency_p95_s"] else float("nan")
    single_ratio = r1["tokens_per_s"] / naive1["tokens_per_s"] if naive1["tokens_per_s"] else float("nan")
    errors = sum(level["errors"] for server in results.values() for level in server.values())
    return {
        "model": "smollm2-135m-instruct (embedded)",
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "results": results,
        "targets": {
            "throughput_16_vs_naive": {"value": round(speedup16, 2), "target": ">= 8", "met": speedup16 >= 8},
            "p95_latency_16_vs_naive": {"value": round(p95_ratio, 3), "target": "<= 0.25", "met": p95_ratio <= 0.25},
            "single_client_tokens_per_s_vs_naive": {"value": round(single_ratio, 2), "target": ">= 1",
                                                    "met": single_ratio >= 1},
            "errors": {"value": errors, "target": "0", "met": errors == 0},
        },
        "environment": {
            "cpus": os.cpu_count(), "torch_threads_both_servers": args.threads,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__,
        },
    }


def print_table(report: dict) -> None:
    header = f"{'server':8} {'clients':>7} {'reqs':>5} {'err':>4} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p95':>9} " \
             f"{'lat p50':>8} {'lat p95':>8}  tok/s by round"
    print("\n" + header + "\n" + "-" * len(header))
    for clients in LEVELS:
        for name in ("naive", "r1tune"):
            r = report["results"][name][str(clients)]
            print(f"{name:8} {clients:>7} {r['requests']:>5} {r['errors']:>4} {r['tokens_per_s']:>8.1f} "
                  f"{r['ttft_p50_s']:>8.2f}s {r['ttft_p95_s']:>8.2f}s {r['latency_p50_s']:>7.2f}s "
                  f"{r['latency_p95_s']:>7.2f}s  {r['tokens_per_s_by_round']}")
    print()
    for name, t in report["targets"].items():
        print(f"{name:40} {t['value']!s:>8}  target {t['target']:>7}  {'met' if t['met'] else 'NOT MET'}")
    so = report["structured_output"]
    print(f"\njson_schema decoding: {so['json_ms_per_token_median']} ms/token vs free text {so['free_ms_per_token_median']} "
          f"(+{so['overhead_ms_per_token']}), {so['json_valid']}/{so['requests_each']} answers valid")
    env = report["environment"]
    print(f"\nload average before/after: {env['load_average_before']} / {env['load_average_after']} "
          f"on {env['cpus']} CPUs, torch threads {env['torch_threads_both_servers']} in both servers")


if __name__ == "__main__":
    main()
