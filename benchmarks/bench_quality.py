"""The learned quality filter (`clean.quality`): how well it catches bad records, and what it costs.

* Quality: tests/data/quality_cases.jsonl (160 support records, 20 + 20 marked good/bad by hand, 120 to
  judge); precision and recall of catching the bad ones, against a baseline scored in the same run: the
  rule-based filters alone (length, repetition, garbage), which is what `prepare` does without it.
* Cost: `prepare` on the same generated records as bench_data.py (plus the 40 marked ones), without and
  with the filter, one after the other in this process: records/s of each.

    .venv/bin/python benchmarks/bench_quality.py [--records 5000]

Results: bench-results/bench_quality.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench_data import generate

from r1tune.config import DataConfig, QualityConfig, SourceConfig
from r1tune.data.prepare import run_data_pipeline
from r1tune.data.quality import quality_filter

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "quality_cases.jsonl"
OUT = ROOT / "bench-results" / "bench_quality.json"


def _cases() -> tuple[list[dict], list[str]]:
    rows = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]
    truth = [r["meta"]["quality"] for r in rows]
    for row in rows:
        if row["meta"]["split"] != "marked":
            del row["meta"]["quality"]
    return rows, truth


def _scores(caught: set[int], bad: set[int]) -> dict[str, float]:
    return {"precision": round(len(caught & bad) / len(caught), 3) if caught else 1.0,
            "recall": round(len(caught & bad) / len(bad), 3), "caught": len(caught)}


def quality_scores(work: Path) -> dict:
    rows, truth = _cases()
    judged = [i for i, r in enumerate(rows) if r["meta"]["split"] == "judge"]
    bad = {i for i in judged if truth[i] == "bad"}
    reasons, summary = quality_filter(rows, QualityConfig(enabled=True), None)
    learned = _scores({i for i in judged if reasons[i] is not None}, bad)
    path = work / "judge.jsonl"  # the rule-based filters alone, on the records to judge
    path.write_text("".join(json.dumps({**rows[i], "meta": {"case": i}}, ensure_ascii=False) + "\n" for i in judged),
                    encoding="utf-8")
    steps = ["nfkc", "whitespace", "length_filter", "repetition_filter", "garbage_filter"]
    run_data_pipeline(DataConfig(sources=[SourceConfig(path=path)], clean={"steps": steps}), work / "rules", seed=0)
    rejected = [json.loads(line) for line in (work / "rules" / "quarantine.jsonl").read_text().splitlines()]
    lines = {int(item["source"].rsplit(":", 1)[1]) - 1 for item in rejected if item["action"] == "rejected"}
    rules = _scores({judged[line] for line in lines}, bad)
    return {"judged": len(judged), "bad": len(bad), "learned": learned, "rules_only": rules,
            "cv_on_marked": {k: summary.get(k) for k in ("cv_precision", "cv_recall", "cv_folds")}}


def throughput(work: Path, n: int) -> dict:
    corpus = work / "corpus.jsonl"
    generate(corpus, n)
    marked = [r for r in _cases()[0] if r["meta"].get("quality")]
    with corpus.open("a", encoding="utf-8") as fh:
        for row in marked:
            fh.write(json.dumps({"instruction": row["messages"][0]["content"], "output": row["messages"][1]["content"],
                                 "meta": row["meta"]}, ensure_ascii=False) + "\n")
    out = {}
    for name, quality in (("without", {}), ("with", {"enabled": True})):
        cfg = DataConfig(sources=[SourceConfig(path=corpus, format="alpaca")], num_proc=1,
                         clean={"quality": quality})
        start = time.perf_counter()
        report = run_data_pipeline(cfg, work / name, seed=1)
        seconds = time.perf_counter() - start
        out[name] = {"records_per_second": round(report["funnel"]["read"] / seconds, 1), "seconds": round(seconds, 1),
                     "quality_seconds": report["timings"].get("quality")}
    return {"records": n + len(marked), **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    try:
        results = {"quality": quality_scores(work), "throughput": throughput(work, args.records)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2), encoding="utf-8")
    q, t = results["quality"], results["throughput"]
    print(f"catching bad records among {q['judged']} judged ({q['bad']} bad):")
    print(f"  learned filter (20 + 20 marked)   precision {q['learned']['precision']:.3f}  recall {q['learned']['recall']:.3f}")
    print(f"  rule-based filters only (baseline) precision {q['rules_only']['precision']:.3f}  "
          f"recall {q['rules_only']['recall']:.3f}")
    print(f"prepare on {t['records']:,} records, 1 process: {t['without']['records_per_second']:,.0f} records/s "
          f"without the filter, {t['with']['records_per_second']:,.0f} with it "
          f"(filter {t['with']['quality_seconds']:.1f} s)")
    print(f"results: {OUT}")


if __name__ == "__main__":
    main()
