"""`r1tune compare RUN_A RUN_B`: two runs side by side — what changed in the config, what changed in results."""

from __future__ import annotations

from typing import Any

import yaml

from r1tune.artifacts import ArtifactError, EvalMetrics
from r1tune.errors import R1TuneError
from r1tune.eval.metric_info import METRICS
from r1tune.rundir import RunDir


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _load(run: RunDir) -> tuple[EvalMetrics, dict]:
    if not run.metrics.is_file():
        raise R1TuneError(f"{run.path} has no metrics.json", hint=f"run `r1tune eval {run.path}` first")
    metrics = run.read_metrics()
    try:  # resolved (defaults filled) so only real differences show
        config = run.load_config().model_dump(mode="json")
    except Exception:
        config = yaml.safe_load(run.config_file.read_text(encoding="utf-8")) if run.config_file.is_file() else {}
    return metrics, config if isinstance(config, dict) else {}


def compare_runs(a: RunDir, b: RunDir) -> dict[str, Any]:
    """Config differences (data paths, hyper-parameters) and every shared metric of both runs."""
    (metrics_a, config_a), (metrics_b, config_b) = _load(a), _load(b)
    flat_a, flat_b = _flatten(config_a), _flatten(config_b)
    skip = ("project.runs_dir",)
    config_diff = [{"key": k, "a": flat_a.get(k), "b": flat_b.get(k)} for k in sorted(set(flat_a) | set(flat_b))
                   if flat_a.get(k) != flat_b.get(k) and k not in skip]
    rows = []
    for info in METRICS:
        key, label, better, digits = info.key, info.label, info.better, info.digits
        ta, tb = metrics_a.tuned.value(key), metrics_b.tuned.value(key)
        if not isinstance(ta, (int, float)) and not isinstance(tb, (int, float)):
            continue
        diff = tb - ta if isinstance(ta, (int, float)) and isinstance(tb, (int, float)) else None
        rows.append({"key": key, "label": label, "better": better, "digits": digits,
                     "a_base": metrics_a.base.value(key) if metrics_a.base else None, "a_tuned": ta,
                     "b_base": metrics_b.base.value(key) if metrics_b.base else None, "b_tuned": tb, "b_minus_a": diff,
                     "b_better": None if diff in (None, 0) or better == "none" else (diff > 0) == (better == "higher")})
    redteam = {}
    for name, metrics in (("a", metrics_a), ("b", metrics_b)):
        summary = metrics.redteam or {}
        if summary.get("tuned"):
            redteam[name] = f"{summary['tuned']['passed']}/{summary['n']}"
    return {"a": {"run": a.run_id, "n_examples": metrics_a.n_examples},
            "b": {"run": b.run_id, "n_examples": metrics_b.n_examples},
            "config_diff": config_diff, "metrics": rows, "redteam_tuned_passed": redteam,
            "same_test_set": None if None in (_test_hash(a), _test_hash(b)) else _test_hash(a) == _test_hash(b)}


def _test_hash(run: RunDir) -> str | None:
    try:
        return run.read_data_report().splits.get("test")
    except ArtifactError:
        return None
