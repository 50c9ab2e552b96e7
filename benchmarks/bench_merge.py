"""Merging a LoRA adapter into its base: shard by shard (r1tune's default when the base's safetensors are
local) against the baseline measured in the same run, peft's in-memory merge (whole base in fp32).

Each merge runs in its own fresh process, its peak resident memory (VmHWM, reset once its imports are done)
its own; file pages the merge maps count in it, as the kernel counts them. Both start from the same
adapter (rank 16 on every linear layer of the embedded model, random non-zero factors) and their output
tensors are compared exactly. `--base` merges into another local model folder instead; `--shard-mb N`
first re-saves the base in bf16 shards of at most N MB, as large checkpoints come (a 70B base in 5 GB
shards holds 1/28 of the model in each).

With `--gguf QUANT` it measures GGUF export instead: the adapter merged tensor by tensor as the GGUF writer
takes them (r1tune's way) against the baseline of the same run, an fp32 merged folder written first and then
converted (the way before, and still the way for adapters only peft can merge); the two files' tensors are
compared exactly, and each way's scratch files on disk are counted.

    .venv/bin/python benchmarks/bench_merge.py [--base MODEL] [--shard-mb N] [--dtype bf16|fp32] [--gguf q8_0|f16]

Results: bench-results/merge.json (merge-gguf.json with --gguf) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "merge.json"
OUT_GGUF = ROOT / "bench-results" / "merge-gguf.json"
MERGES = ["in memory (peft)", "shard by shard"]
GGUF_WAYS = ["gguf via an fp32 merged folder", "gguf merged as written"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(base: str, folder: Path) -> Path:
    """A rank-16 adapter on every linear layer whose B factors are not zero (as after training)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from r1tune import models
    from r1tune.config import ModelConfig

    torch.manual_seed(0)
    model = get_peft_model(models.load(ModelConfig(name=base)).model,
                           LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    model.save_pretrained(folder)
    return folder


def sharded_copy(base: str, folder: Path, shard_mb: int) -> str:
    """The base re-saved in bf16 shards of at most `shard_mb` MB (tokenizer included)."""
    import torch

    from r1tune import models
    from r1tune.config import ModelConfig

    loaded = models.load(ModelConfig(name=base))
    loaded.model.to(torch.bfloat16).save_pretrained(folder, max_shard_size=f"{shard_mb}MB")
    loaded.tokenizer.save_pretrained(folder)
    return str(folder)


def _merge_child(way: str, base: str, adapter: str, out: str, dtype: str, results: Any) -> None:
    from r1tune.config import ModelConfig

    cfg = ModelConfig(name=base)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS starts again from here, after the imports
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    scratch_mb = _run_way(way, cfg, Path(adapter), Path(out), dtype)
    seconds = time.perf_counter() - start
    results.put({"way": way, "seconds": round(seconds, 2), "peak_rss_mb": _status_mb("VmHWM"),
                 "rss_before_mb": before, "scratch_on_disk_mb": scratch_mb})


def _run_way(way: str, cfg: Any, adapter: Path, out: Path, stored: str) -> float:
    """Carry out one way into `out`; the MB of scratch files it wrote on the way (GGUF ways)."""
    import shutil

    from r1tune import models
    from r1tune.export.gguf_writer import write_gguf
    from r1tune.export.merge import merge_in_memory, merged_tensor_stream, storage_dtype

    if way == MERGES[0]:
        merge_in_memory(cfg, adapter, out, storage_dtype(stored))
        return 0.0
    if way == MERGES[1]:
        _merge_by_shard(cfg, adapter, out, stored)
        return 0.0
    scratch = out / "hf"
    if way == GGUF_WAYS[0]:
        _merge_by_shard(cfg, adapter, scratch, "fp32")
        models.load(cfg, with_weights=False).tokenizer.save_pretrained(scratch)
        tensors = None
    else:
        tensors = merged_tensor_stream(cfg, adapter, scratch)
        if tensors is None:
            raise SystemExit("this base cannot be merged as the GGUF is written")
    write_gguf(scratch, out / "model.gguf", stored, tensors=tensors)
    scratch_mb = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file()) / 1e6
    shutil.rmtree(scratch)
    return round(scratch_mb, 1)


def _merge_by_shard(cfg: Any, adapter: Path, out: Path, stored: str) -> None:
    from r1tune.export.merge import local_base_folder, storage_dtype
    from r1tune.export.shard_merge import merge_by_shard

    reason = merge_by_shard(local_base_folder(cfg), adapter, out, storage_dtype(stored))
    if reason is not None:
        raise SystemExit(f"this base cannot be merged shard by shard: {reason}")


def _status_mb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024)
    raise SystemExit(f"/proc/self/status has no {field}: this benchmark needs Linux")


def run_merge(way: str, base: str, adapter: Path, out: Path, dtype: str) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_merge_child, args=(way, base, str(adapter), str(out), dtype, results))
    child.start()
    row = results.get()
    child.join()
    return row


def same_gguf_tensors(a: Path, b: Path) -> bool:
    import gguf
    import numpy as np

    first, second = ({t.name: t for t in gguf.GGUFReader(f).tensors} for f in (a / "model.gguf", b / "model.gguf"))
    return first.keys() == second.keys() and all(
        first[k].tensor_type == second[k].tensor_type and np.array_equal(first[k].data, second[k].data) for k in first)


def same_tensors(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    def tensors(folder: Path) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for shard in folder.glob("*.safetensors"):
            merged.update(load_file(shard))
        return merged

    first, second = tensors(a), tensors(b)
    shared = first.keys() & second.keys()
    extra = (first.keys() ^ second.keys()) - {"lm_head.weight"}  # a tied head may be written by one only
    return not extra and all(torch.equal(first[k], second[k]) for k in shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--shard-mb", type=int, default=None)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--gguf", choices=["f16", "q8_0"], default=None, help="measure GGUF export in this quant")
    args = parser.parse_args()
    if args.shard_mb is not None and args.shard_mb < 1:
        parser.error("--shard-mb must be a positive number of MB")
    with tempfile.TemporaryDirectory() as tmp:
        base = sharded_copy(args.base, Path(tmp) / "base", args.shard_mb) if args.shard_mb else args.base
        adapter = make_adapter(base, Path(tmp) / "adapter")
        ways, stored = (GGUF_WAYS, args.gguf) if args.gguf else (MERGES, args.dtype)
        rows = [run_merge(way, base, adapter, Path(tmp) / f"out{i}", stored) for i, way in enumerate(ways)]
        compare = same_gguf_tensors if args.gguf else same_tensors
        identical = compare(Path(tmp) / "out0", Path(tmp) / "out1")
    baseline = rows[0]
    for row in rows:
        row["peak_vs_baseline"] = round(row["peak_rss_mb"] / baseline["peak_rss_mb"], 2)
    report = {"base": args.base, "shard_mb": args.shard_mb, "stored": stored, "identical_tensors": identical,
              "rows": rows, "machine": platform.platform(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = OUT_GGUF if args.gguf else OUT
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    shards = f" in {args.shard_mb} MB shards" if args.shard_mb else ""
    print(f"merge of a rank-16 adapter into {args.base}{shards}, stored {stored}; identical tensors: {identical}")
    print("| way | seconds | peak RSS MB | RSS before MB | peak vs baseline | scratch on disk MB |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['way']} | {row['seconds']} | {row['peak_rss_mb']} | {row['rss_before_mb']} | "
              f"{row['peak_vs_baseline']}x | {row['scratch_on_disk_mb']} |")
    if not identical:
        raise SystemExit("the two merges differ")


if __name__ == "__main__":
    main()
