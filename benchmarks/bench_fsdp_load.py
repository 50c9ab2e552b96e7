"""`make bench-fsdp-load`: what an FSDP run's processes hold when only the main one reads the base, against
every process reading it (the behaviour before, and ZeRO-2's), in the same run.

r1tune's recipe sharded by accelerate's FSDP2 over two CPU processes (gloo), through the same worker as the
tests (tests/train/sharded_recipe_worker.py), on the embedded SmolLM2-135M-Instruct (an fp32 checkpoint of
540 MB) with the frozen base in fp32 and in bf16: LoRA, 2 optimiser steps. Per process: whether it read the
weights, seconds to build the model, peak RSS once the model is built and after training (where activations
may set the peak). The runs alternate (baseline first in odd rounds) because this machine's speed drifts. A
base loaded in its checkpoint's dtype stays mapped from the file, whose pages the processes share;
converted, each process holding it holds its own copy. Results: bench-results/bench_fsdp_load.json and a
table.

    .venv/bin/python benchmarks/bench_fsdp_load.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "train" / "sharded_recipe_worker.py"
OUT = ROOT / "bench-results" / "bench_fsdp_load.json"
EVERY, MAIN_ONLY = "every process reads (baseline)", "main process reads"
# float32: the checkpoint's own dtype, which safetensors maps from the file (pages the processes share);
# bfloat16: r1tune's frozen base on CPUs with bf16, converted into memory of each process's own
WEIGHTS = ("float32", "bfloat16")


def launch(model_dir: Path, every_process_reads: bool, weights: str, work: Path) -> dict:
    """One two-process FSDP run with the frozen base in `weights` (a torch dtype's name); its processes'
    facts and the launch's wall seconds."""
    precision = "bf16" if weights == "bfloat16" else "fp32"
    job = {"out": str(work / "run"), "strategy": "fsdp", "precision": precision, "resume": False,
           "every_process_reads": every_process_reads, "weights_dtype": weights, "overrides": {"max_steps": 2}}
    (work / "jobs.json").write_text(json.dumps([job]))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(WORKER), str(model_dir), str(work / "jobs.json")], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"the FSDP run failed:\n{done.stderr[-4000:]}")
    ranks = [json.loads((work / f"run-loaded-rank{rank}.json").read_text()) for rank in (0, 1)]
    return {"wall_seconds": round(time.perf_counter() - started, 2), "ranks": ranks}


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per mode and rank: the median over rounds."""
    return {mode: {f"rank{rank}": {"read": results[0]["ranks"][rank]["read"],
                                   **{key: statistics.median(r["ranks"][rank][key] for r in results)
                                      for key in ("load_seconds", "peak_rss_loaded_mib", "peak_rss_mib")}}
                   for rank in (0, 1)}
            for mode, results in runs.items()}


def table(summary: dict[str, dict]) -> str:
    lines = ["| mode | rank | read the weights | model built (s) | peak RSS once built (MiB) | "
             "peak RSS after training (MiB) |", "|---|---|---|---|---|---|"]
    for mode, ranks in summary.items():
        for rank, facts in ranks.items():
            lines.append(f"| {mode} | {rank} | {facts['read']} | {facts['load_seconds']:.2f} | "
                         f"{facts['peak_rss_loaded_mib']:.0f} | {facts['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from r1tune.models.loading import ensure_embedded_cache
    from r1tune.models.presets import presets

    model_dir = ensure_embedded_cache(presets()["smollm2-135m-instruct"])
    result: dict = {"model": "SmolLM2-135M-Instruct (an fp32 checkpoint)", "processes": 2, "rounds": args.rounds}
    for weights in WEIGHTS:
        runs: dict[str, list[dict]] = {EVERY: [], MAIN_ONLY: []}
        for round_index in range(args.rounds):
            order = (EVERY, MAIN_ONLY) if round_index % 2 == 0 else (MAIN_ONLY, EVERY)
            for mode in order:
                with tempfile.TemporaryDirectory() as work:
                    runs[mode].append(launch(model_dir, mode == EVERY, weights, Path(work)))
        summary = summarise(runs)
        saved = {key: round(summary[EVERY]["rank1"][key] - summary[MAIN_ONLY]["rank1"][key], 1)
                 for key in ("peak_rss_loaded_mib", "peak_rss_mib")}
        result[weights] = {"runs": runs, "median": summary, "rank1_saved_mib": saved}
        print(f"\nfrozen base in {weights}:\n{table(summary)}")
        print(f"rank 1 with only the main process reading the base: {saved['peak_rss_loaded_mib']:.0f} MiB less "
              f"once the model is built, {saved['peak_rss_mib']:.0f} MiB less at the end of training")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(OUT)


if __name__ == "__main__":
    main()
