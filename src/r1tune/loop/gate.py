"""The improvement loop's gate: is the candidate better where its feedback asked, and no worse elsewhere?

The candidate and the live version answer the same prompts, scored by the eval stage with the live
version in the base's place, so every change carries eval's paired 95% bootstrap interval:

- held-out corrections (never trained): `loop.heldout_metric` must move the better way;
- the live version's own test set: no guard metric may get worse beyond its interval (the interval lies
  wholly on the bad side), and neither may the reasoning probes' solve rate when they are measured.

A rule that cannot be checked (no held-out corrections, a metric that was not measured) fails the gate:
promoting on missing evidence is what a gate exists to prevent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r1tune.artifacts import ConfidenceInterval, EvalMetrics, GateCheck, GateDecision, write_artifact
from r1tune.config import LoopConfig, R1TuneConfig
from r1tune.eval.metric_info import BETTER
from r1tune.rundir import RunDir

GATE_FILE = "gate.json"
LIVE_ADAPTER = "live"  # the live version's adapter, loaded beside the candidate's on one base


def decide(loop: LoopConfig, candidate: str, live: str, live_test: EvalMetrics | None,
           heldout: EvalMetrics | None) -> GateDecision:
    """The gate's verdict from the two comparisons (candidate as `tuned`, live as `base`)."""
    checks = [_heldout_check(loop.heldout_metric, heldout)]
    if live_test is not None:
        keys = loop.guard_metrics if loop.guard_metrics is not None else sorted(live_test.ci)
        checks += [_guard_check(key, live_test) for key in keys]
        checks += _probe_checks(live_test)
    reasons = [f"{c.test_set}: {c.metric}: {c.rule}" for c in checks if not c.passed]
    return GateDecision(candidate=candidate, live=live, passed=not reasons, reasons=reasons, checks=checks,
                        heldout_examples=heldout.n_examples if heldout else 0,
                        live_test_examples=live_test.n_examples if live_test else 0)


def _heldout_check(metric: str, heldout: EvalMetrics | None) -> GateCheck:
    if heldout is None or heldout.base is None:
        return GateCheck(test_set="heldout_corrections", metric=metric, live=None, candidate=None, delta=None,
                         passed=False, rule="no held-out corrections to measure on (need at least two corrections)")
    delta = heldout.delta.get(metric)
    interval = heldout.ci.get(metric)
    better = interval.better if interval else BETTER.get(metric, "higher")
    improved = delta is not None and (delta < 0 if better == "lower" else delta > 0)
    rule = f"must get {'lower' if better == 'lower' else 'higher'} than the live version's"
    missing = ("was not measured on the held-out corrections (for key_fact_recall: they state no checkable "
               "fact; set loop.heldout_metric: rougeL)")
    return _check("heldout_corrections", metric, heldout, delta, interval, improved,
                  rule if delta is not None else missing)


def _guard_check(key: str, live_test: EvalMetrics) -> GateCheck:
    interval = live_test.ci.get(key)
    delta = live_test.delta.get(key)
    if interval is None:
        return _check("live_test", key, live_test, delta, None, False, "was not measured with an interval")
    worse = interval.high < 0 if interval.better == "higher" else interval.low > 0 if interval.better == "lower" else False
    return _check("live_test", key, live_test, delta, interval, not worse,
                  "got worse beyond its 95% interval" if worse else "no worse beyond its 95% interval")


def _probe_checks(live_test: EvalMetrics) -> list[GateCheck]:
    probes = live_test.reasoning_probes or {}
    if "ci" not in probes:
        return []
    low, high = probes["ci"]
    worse = high < 0
    accuracy = probes.get("accuracy", {})
    return [GateCheck(test_set="live_test", metric="reasoning_probes", live=accuracy.get("base"),
                      candidate=accuracy.get("tuned"), delta=probes.get("delta"), ci_low=low, ci_high=high,
                      passed=not worse, rule="solved fewer probes beyond the 95% interval" if worse
                      else "no fewer probes solved beyond the 95% interval")]


def _check(test_set: Any, key: str, metrics: EvalMetrics, delta: float | None, interval: ConfidenceInterval | None,
           passed: bool, rule: str) -> GateCheck:
    def value(scores: Any) -> float | None:
        found = scores.value(key) if scores is not None else None
        return float(found) if isinstance(found, int | float) else None

    return GateCheck(test_set=test_set, metric=key, live=value(metrics.base), candidate=value(metrics.tuned),
                     delta=delta, ci_low=interval.low if interval else None, ci_high=interval.high if interval else None,
                     passed=passed, rule=rule)


def run_gate(cfg: R1TuneConfig, candidate: RunDir, live: RunDir) -> GateDecision:
    """Evaluate candidate vs live on the live version's test set and the held-out corrections (the
    candidate run's test split); writes `loop/gate.json` and each comparison's metrics beside it."""
    from r1tune import models
    from r1tune.data.records import read_jsonl

    plan = models.inference_plan(cfg.train.precision, cfg.model)
    loaded = models.load(cfg.model, cfg.train.reasoning, plan=plan, **candidate.trained_weights())
    live_version = _live_beside(cfg, loaded, live, plan)
    folder = candidate.path / "loop"
    live_records = list(read_jsonl(live.data / "test.jsonl")) if (live.data / "test.jsonl").is_file() else []
    heldout_records = list(read_jsonl(candidate.data / "test.jsonl"))
    live_test = _compare(cfg, loaded, live_version, live_records, folder / "live_test", plan, probes=True)
    heldout = _compare(cfg, loaded, live_version, heldout_records, folder / "heldout", plan, probes=False)
    decision = decide(cfg.loop, candidate.run_id, live.run_id, live_test, heldout)
    write_artifact(folder / GATE_FILE, decision)
    return decision


def _live_beside(cfg: R1TuneConfig, loaded: Any, live: RunDir, plan: Any) -> dict[str, Any]:
    """How `evaluate` reaches the live version: when both versions are LoRA/DoRA adapters, the live one is a
    second adapter on the candidate's base (one copy of the base weights, which for a 70B base is the
    difference between fitting and not); otherwise a second loaded model."""
    from r1tune import models

    weights = live.trained_weights()
    if "adapter" in weights and models.add_named_adapter(loaded.model, weights["adapter"], LIVE_ADAPTER):
        return {"base_context": lambda: models.adapter_switched(loaded.model, LIVE_ADAPTER)}
    return {"base_model": models.load(cfg.model, cfg.train.reasoning, plan=plan, **weights).model}


def _compare(cfg: R1TuneConfig, loaded: Any, live_version: dict[str, Any], records: list, out: Path, plan: Any,
             probes: bool) -> EvalMetrics | None:
    """Candidate (`tuned`) vs live (`base`) on `records`; probes only on the live test set (once)."""
    from r1tune.eval import evaluate

    if not records:
        return None
    eval_cfg = cfg.eval.model_copy(update={"compare_base": True} if probes else
                                   {"compare_base": True, "reasoning_probes": 0, "redteam": [],
                                    "redteam_file": None, "judge": cfg.eval.judge.model_copy(update={"model": None})})
    metrics = evaluate(eval_cfg, loaded, records, out, plan.compute, cfg.train.max_seq_len, show_progress=False,
                       seed=cfg.project.seed, **live_version)
    write_artifact(out / "metrics.json", metrics)
    return metrics
