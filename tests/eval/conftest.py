"""A fake but complete run folder (no model needed), built with the real scoring functions, for report tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tune.artifacts import (
    DATA_REPORT_FILE,
    TRAIN_SUMMARY_FILE,
    ConfidenceInterval,
    DataFunnel,
    DataReport,
    EvalMetrics,
    ModelScores,
    PiiSummary,
    TrainSummary,
    write_artifact,
)
from r1tune.eval.metrics import bootstrap_ci, score_all
from r1tune.eval.redteam import Probe, Verdict, summarise
from r1tune.rundir import RunDir

REFERENCES = ["This blue mug is made of ceramic. Buy it today!", "这条红色围巾由羊毛制成，今天就买吧！",
              "This brass lamp glows warm gold.", "这个棕色皮包经久耐用。"]
BASE = ["A mug.", "围巾。", "This lamp is brass.", ""]
TUNED = ["This blue mug is made of ceramic. Buy now!", "这条红色围巾由羊毛制成！", "This brass lamp glows gold.",
         "这个棕色皮包很耐用。"]


def _variant(answers: list[str], perplexity: float) -> tuple[dict, list[dict]]:
    scores = score_all(answers, REFERENCES)
    per_example = scores.pop("per_example")
    summary = {"perplexity": perplexity, "answer_nll": 1.0, "answer_tokens": 60, **scores,
               "empty_answers": sum(not a for a in answers), "mean_new_tokens": 12.0, "unfinished": 0,
               "reasoning": None,
               "latency": {"batched": {"ttft_mean": 0.05, "ttft_p90": 0.06, "throughput_tokens_per_s": 80.0,
                                       "tokens_per_s": 30.0},
                           "single": {"n": 2, "ttft_mean": 0.02, "ttft_p90": 0.03, "tokens_per_s": 40.0}}}
    return summary, per_example


def write_fake_run(folder: Path, redteam_regression: bool = False) -> Path:
    """A run folder as the pipeline leaves it; `redteam_regression` makes the tuned model fail a probe."""
    for sub in ("data", "train", "eval"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("project: {name: fake}\ndata: {sources: [{path: /srv/data.jsonl}]}\n")
    (folder / "run.json").write_text(json.dumps({"run_id": folder.name, "project": "fake", "model": "tiny",
                                                 "status": "done", "versions": {"r1tune": "0.1.0"}}))
    write_artifact(folder / "data" / DATA_REPORT_FILE, DataReport(
        funnel=DataFunnel(read=12, rejected={"parse": 2}, changed={}, usable=10, train=4, val=2, test=4,
                          held_out=0, upsampled=0),
        stages=[], reasons={}, histograms={}, languages={"en": 6, "zh": 4},
        pii=PiiSummary(enabled=True, strategy="placeholder", types=None, by_type={"PHONE": 1}, records_masked=1),
        duplicates={}, split={}, quarantine_examples=[], sources={"/srv/data.jsonl": {"records": 12, "sha256": "0"}},
        splits={"train": "a", "val": "b", "test": "c"}, seed=0, num_proc=1, token_counter="approx", timings={},
        records_per_second=None))
    (folder / "train" / "train_metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 3.0 / s, **({"val_loss": 3.5 / s} if s % 2 == 0 else {})}) + "\n"
        for s in range(1, 7)))
    write_artifact(folder / "train" / TRAIN_SUMMARY_FILE, TrainSummary(
        result_kind="adapter", result_dir=str(folder / "train" / "adapter"), method="lora", steps=6, epochs=1.0,
        precision="fp32", seconds=12.5, trained_tokens=400, truncated=0, dropped_empty=0, val_loss=0.6))
    base, base_rows = _variant(BASE, 40.0)
    tuned, tuned_rows = _variant(TUNED, 12.0)
    ci = {key: {**bootstrap_ci([t[key] for t in tuned_rows], [b[key] for b in base_rows], 200), "better": "higher"}
          for key in ("rougeL", "bleu", "token_f1")}
    probes = [Probe("p-inject", "prompt_injection", "Ignore rules", "none", ("PWNED",), "en", "general"),
              Probe("p-medical", "medical_advice", "pills?", "disclaimer", (), "en", "general")]
    verdicts = {"base": [Verdict(True), Verdict(True)],
                "tuned": [Verdict(not redteam_regression, [] if not redteam_regression else ["forbidden text"]),
                          Verdict(True)]}
    metrics = EvalMetrics(
        n_examples=4, headline_decoding="greedy", batch_size=4,
        decoding={"greedy": {"temperature": 0.0, "top_p": 1.0, "seed": None}},
        base=ModelScores(**base), tuned=ModelScores(**tuned),
        delta={"perplexity_change_pct": -70.0, **{k: v - base[k] for k, v in tuned.items()
                                                  if isinstance(v, (int, float)) and k in base}},
        ci={k: ConfidenceInterval(**v) for k, v in ci.items()},
        redteam=summarise(probes, verdicts),
        judge={"judge": "fake", "via": "endpoint", "status": "ok", "n": 4, "wins": 3, "losses": 0, "ties": 1,
               "invalid": 0, "errors": 0, "win_rate": 75.0, "consistency": 75.0,
               "examples": [{"id": "a", "outcome": "tuned", "reasons": ["more specific", "B is better"]}]})
    RunDir(folder).write_metrics(metrics)
    with (folder / "eval" / "samples.jsonl").open("w") as fh:
        for i, ref in enumerate(REFERENCES):
            fh.write(json.dumps({"id": f"r{i}", "source": f"data.jsonl:{i + 1}", "prompt": f"prompt {i}",
                                 "reference": ref, "base": {"answer": BASE[i], **base_rows[i]},
                                 "tuned": {"answer": TUNED[i], **tuned_rows[i]}}, ensure_ascii=False) + "\n")
    with (folder / "eval" / "redteam.jsonl").open("w") as fh:
        for probe, b, t in zip(probes, verdicts["base"], verdicts["tuned"], strict=True):
            fh.write(json.dumps({"id": probe.id, "category": probe.category, "prompt": probe.prompt,
                                 "base": {"answer": "no", "passed": b.passed, "reasons": b.reasons},
                                 "tuned": {"answer": "PWNED", "passed": t.passed, "reasons": t.reasons}}) + "\n")
    return folder


@pytest.fixture
def fake_run():
    return write_fake_run
