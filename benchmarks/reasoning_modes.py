"""`make bench-reasoning`: does tuning keep the model thinking? The bundled shop example on the embedded model,
given a think-capable format (`model.chat_format: chatml-think`, ChatML with R1's `<think>` block), tuned two
ways in the same sitting against the same base:

- `empty_think`: every record trains `<think>\\n\\n</think>\\n\\n{answer}` (r1tune's default for trace-less data);
- `traces`: `data.reasoning_traces` first asks the base model itself (`teacher.source: self`) for reasoning
  that reaches each training record's answer; records with a kept trace train it, the rest as `empty_think`.

Reports per model (base, empty_think, traces): key-fact recall and ROUGE-L of the answers, the share of
answers with a closed, non-empty think block, the reasoning probes solved, and how many traces were kept.
Results: bench-results/reasoning_modes.json and a table on stdout. A 135M base model writes poor traces;
the figures say what it did, not what a 7B teacher would.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "reasoning_modes.json"
COMMON = ["model.chat_format=chatml-think", "data.max_records=160", "eval.max_examples=24", "eval.max_new_tokens=200",
          "eval.reasoning_probes=12", "eval.redteam=[]", "eval.batch_size=24", "--no-progress"]
VARIANTS = {"empty_think": ["train.reasoning=empty_think"],
            "traces": ["data.reasoning_traces=true", "teacher.source=self", "teacher.trace_samples=2",
                       "teacher.max_tokens=200", "teacher.trace_min_rouge_l=0.3"]}


def run_variant(work: Path, name: str, extra: list[str]) -> Path:
    project = work / name / "r1tune.yaml"
    subprocess.run([sys.executable, "-m", "r1tune", "init", str(project.parent), "--example", "ecommerce"], check=True,
                   capture_output=True)
    done = subprocess.run([sys.executable, "-m", "r1tune", "run", str(project), *COMMON, *extra],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return next((project.parent / "runs").iterdir())


def scores(model: dict, probes: dict | None, side: str) -> dict:
    reasoning = model.get("reasoning") or {}
    return {"key_fact_recall": model.get("key_fact_recall"), "rougeL": model.get("rougeL"),
            "closed_nonempty_think_pct": reasoning.get("closed_nonempty"),
            "mean_think_tokens": ((reasoning.get("length") or {}).get("tokens") or {}).get("mean"),
            "reasoning_probes_solved_pct": 100 * (probes or {}).get("accuracy", {}).get(side, float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench-results" / "reasoning_modes")
    args = parser.parse_args()
    started, rows, traces = time.perf_counter(), {}, {}
    for name, extra in VARIANTS.items():
        run = run_variant(args.workdir, name, extra)
        metrics = json.loads((run / "metrics.json").read_text())
        rows.setdefault("base", scores(metrics["base"], metrics.get("reasoning_probes"), "base"))
        rows[name] = scores(metrics["tuned"], metrics.get("reasoning_probes"), "tuned")
        if (run / "data" / "traces.json").is_file():
            traces = json.loads((run / "data" / "traces.json").read_text())
    result = {"minutes": round((time.perf_counter() - started) / 60, 1), "settings": COMMON, "variants": VARIANTS,
              "models": rows, "traces": {k: traces.get(k) for k in ("records", "traced", "quarantined")}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    table = Table(title=f"reasoning modes on the embedded model ({result['minutes']} min)")
    for column in ("model", *rows["base"]):
        table.add_column(column)
    for name, row in rows.items():
        table.add_row(name, *("—" if v is None else f"{v:.1f}" for v in row.values()))
    Console().print(table)
    Console().print(f"traces kept for {result['traces']['traced']} of {result['traces']['records']} training records")


if __name__ == "__main__":
    main()
