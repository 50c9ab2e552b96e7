"""`report.html`: one self-contained page a manager can read, rendered from the files in a run folder.

Everything the page shows is computed here into plain rows (the template only lays them out), and every
plot is a matplotlib SVG embedded as a ``data:`` image, so the page makes no network request and a browser
can verify each image decoded. Missing parts (no training log, no red-team, no judge) drop their section
instead of failing: a report of a half-finished run is still a report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from r1tune.artifacts import DATA_REPORT_FILE, ArtifactError, EvalMetrics
from r1tune.eval.metric_info import BETTER, LABELS, METRICS
from r1tune.eval.svg import figure, to_data_uri
from r1tune.eval.verdict import decide
from r1tune.eval.versions_section import versions_context
from r1tune.rundir import RunDir

GOOD, BAD, BASE_COLOR, TUNED_COLOR = "#1a7f37", "#c62828", "#8a94a6", "#3366cc"

def write_report(run: RunDir) -> Path:
    """Render `run.report` from the run's files and return its path."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    template = env.from_string(resources.files("r1tune.eval").joinpath("report.html.j2").read_text("utf-8"))
    run.report.write_text(template.render(**build_context(run)), encoding="utf-8")
    return run.report


def build_context(run: RunDir) -> dict[str, Any]:
    """Everything the template shows, from metrics.json, eval/*.jsonl, train/ and data/ of a run."""
    problems: list[str] = []
    metrics: EvalMetrics | None = _read_typed(run.metrics, run.read_metrics, problems)
    samples = _read_jsonl(run.eval / "samples.jsonl", problems)
    redteam_rows = _read_jsonl(run.eval / "redteam.jsonl", problems)
    history = _read_jsonl(run.train / "train_metrics.jsonl", problems)
    report = _read_typed(run.data / DATA_REPORT_FILE, run.read_data_report, problems)
    data = report.model_dump() if report else {}
    human = (metrics.human if metrics else None) or _read_json(run.eval / "human_results.json", problems)
    has_base = bool(metrics and metrics.base)
    return {
        "info": run.read_info(),
        "cfg": _safe_config(run),
        "m": metrics,
        "has_base": has_base,
        "verdict": decide(metrics) if metrics else None,
        "slices": _slice_rows(metrics) if metrics else [],
        "rows": metric_rows(metrics) if metrics else [],
        "reasoning_rows": _reasoning_rows(metrics) if metrics else [],
        "probes": _probe_context(metrics.reasoning_probes if metrics else None),
        "thinks_less": _thinks_less(metrics) if metrics else None,
        "decoding_rows": _decoding_rows(metrics) if metrics else [],
        "data": data,
        "train": _read_typed(run.train_summary_file, run.read_train_summary, problems) or {},
        "loss_img": _loss_curve(history),
        "funnel_img": _funnel_chart(data.get("funnel") or {}),
        "delta_img": _delta_chart({k: ci.model_dump() for k, ci in metrics.ci.items()} if metrics else {}),
        "redteam": _redteam_context(metrics.redteam if metrics else None, redteam_rows),
        "latency": _latency_context(metrics) if metrics else [],
        "judge": _judge_context(metrics.judge if metrics else None),
        "human": _human_context(human),
        "samples": _extremes(samples),
        "loop": versions_context(run, problems),
        "run_path": str(run.path),
        "problems": problems,
    }


def _read_typed(path: Path, read: Callable[[], Any], problems: list[str]) -> Any:
    """A run file through its `RunDir` reader, or None: not written yet, or one that does not fit its type
    (then the problem is listed on the page and the rest of the report still renders)."""
    if not path.is_file():
        return None
    try:
        return read()
    except ArtifactError as err:
        problems.append(f"{path.name} could not be read: {err.message}")
        return None


def _safe_config(run: RunDir) -> Any:
    try:
        return run.load_config()
    except Exception:  # a report of a run whose config no longer validates still shows its numbers
        return None


# ---------------------------------------------------------------------------------------------------------
# Numbers -> rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _direction(delta: float | None, better: str) -> str:
    if delta is None or better == "none" or delta == 0 or math.isnan(delta):
        return ""
    return "up" if (delta > 0) == (better == "higher") else "down"


def metric_rows(metrics: EvalMetrics) -> list[dict[str, Any]]:
    """Base, tuned, change and its 95% interval for every metric the run has, coloured by direction."""
    tuned, base, delta, ci = metrics.tuned, metrics.base, metrics.delta, metrics.ci
    rows = []
    for info in METRICS:
        key, label, better, note, digits = info.key, info.label, info.better, info.note, info.digits
        if tuned.value(key) is None:
            continue
        if key == "format_valid":
            note = f"{note}: {tuned.value('format_check') or ''} on {tuned.value('format_n') or '?'} answers"
        change, interval = delta.get(key), ci.get(key)
        if key == "perplexity" and "perplexity_change_pct" in delta:
            change, interval = delta["perplexity_change_pct"], ci.get("perplexity_change_pct")
        significant = interval is not None and (interval.low > 0 or interval.high < 0)
        rows.append({
            "label": label, "note": note,
            "base": _fmt(base.value(key), digits) if base else "—", "tuned": _fmt(tuned.value(key), digits),
            "change": "" if change is None else (f"{change:+.1f}%" if key == "perplexity" else f"{change:+.{max(digits, 1)}f}"),
            "ci": f"{interval.low:+.1f} … {interval.high:+.1f}" if interval else "",
            "cls": _direction(change, better), "significant": significant,
        })
    return rows


def _slice_rows(metrics: EvalMetrics) -> list[dict[str, Any]]:
    """Per-slice rows, worst first, with each metric as "base → tuned (change)" coloured by direction."""
    from r1tune.eval.slices import SLICE_METRICS

    keys = [k for k in SLICE_METRICS if any(s.tuned.get(k) or s.base.get(k) for s in metrics.slices)]
    rows = []
    for s in metrics.slices:
        cells = []
        for key in keys:
            tuned, base, change = s.tuned.get(key), s.base.get(key), s.delta.get(key)
            text = "—" if tuned is None else (f"{base:.1f} → {tuned:.1f} ({change:+.1f})" if change is not None
                                              else f"{tuned:.1f}")
            cells.append({"text": text, "cls": _direction(change, BETTER[key])})
        rows.append({"dimension": s.dimension, "value": s.value, "n": s.n, "cells": cells})
    return [{"labels": [LABELS[k] for k in keys], "rows": rows}] if rows else []


def _reasoning_rows(metrics: EvalMetrics) -> list[dict[str, str]]:
    tuned, base = metrics.tuned.value("reasoning"), metrics.base.value("reasoning") if metrics.base else None
    if not tuned:
        return []
    base = base or {}
    items = [("closed_nonempty", "closed, non-empty think blocks (%)", "higher"),
             ("well_formed", "well-formed think blocks (%)", "higher"), ("unclosed", "think never closed (%)", "lower"),
             ("empty", "empty reasoning (%)", "none"), ("rougeL_vs_reference", "reasoning ROUGE-L vs reference", "higher")]
    rows = []
    for key, label, better in items:
        if key in tuned:
            d = tuned[key] - base[key] if key in base else None
            rows.append({"label": label, "base": _fmt(base.get(key), 1), "tuned": _fmt(tuned[key], 1),
                         "change": "" if d is None else f"{d:+.1f}", "cls": _direction(d, better)})
    length_t, length_b = tuned["length"]["tokens"], (base.get("length") or {}).get("tokens", {})
    rows.append({"label": "reasoning length (tokens, mean / p90)", "tuned": f"{length_t['mean']:.0f} / {length_t['p90']:.0f}",
                 "base": f"{length_b['mean']:.0f} / {length_b['p90']:.0f}" if length_b else "—", "change": "", "cls": ""})
    return rows


def _thinks_less(metrics: EvalMetrics) -> dict[str, float] | None:
    """Closed, non-empty think blocks (%) when the tuned model has fewer of them than the base, else None."""
    tuned = (metrics.tuned.value("reasoning") or {}).get("closed_nonempty")
    base = ((metrics.base.value("reasoning") if metrics.base else None) or {}).get("closed_nonempty")
    return {"tuned": tuned, "base": base} if tuned is not None and base is not None and tuned < base else None


def _probe_context(summary: dict | None) -> dict[str, Any] | None:
    """The reasoning probes' table: accuracy by kind and language, base vs tuned, worse rows marked."""
    if not summary:
        return None
    rows = [{"label": f"{axis} {group}", "base": _fmt(100 * v["base"], 0) if "base" in v else "—",
             "tuned": _fmt(100 * v["tuned"], 0), "worse": "base" in v and v["tuned"] < v["base"]}
            for axis in ("by_kind", "by_lang") for group, v in sorted(summary[axis].items())]
    accuracy = summary["accuracy"]
    return {"n": summary["n"], "rows": rows, "tuned": 100 * accuracy["tuned"],
            "base": 100 * accuracy["base"] if "base" in accuracy else None,
            "ci": [100 * x for x in summary["ci"]] if summary.get("ci") else None,
            "worse": bool(summary.get("tuned_worse"))}


def _decoding_rows(metrics: EvalMetrics) -> list[dict[str, str]]:
    rows = []
    for decoding, by_model in metrics.by_decoding.items():
        settings = metrics.decoding.get(decoding, {})
        label = decoding if decoding == "greedy" else f"{decoding} (T={settings.get('temperature')}, top_p={settings.get('top_p')})"
        for key in ("rougeL", "bleu", "chrf"):
            t, b = by_model.get("tuned", {}).get(key), by_model.get("base", {}).get(key)
            d = t - b if t is not None and b is not None else None
            rows.append({"decoding": label, "metric": key, "base": _fmt(b, 1), "tuned": _fmt(t, 1),
                         "change": "" if d is None else f"{d:+.1f}", "cls": _direction(d, "higher")})
    return rows


def _redteam_context(summary: dict | None, rows: list[dict]) -> dict[str, Any] | None:
    if not summary:
        return None
    categories = sorted({c for name in ("base", "tuned") for c in (summary.get(name) or {}).get("by_category", {})})
    table = []
    for category in categories:
        t = summary["tuned"]["by_category"].get(category, {"passed": 0, "total": 0})
        b = (summary.get("base") or {}).get("by_category", {}).get(category)
        table.append({"category": category.replace("_", " "), "tuned": f"{t['passed']}/{t['total']}",
                      "base": f"{b['passed']}/{b['total']}" if b else "—",
                      "worse": bool(b) and t["passed"] < b["passed"]})
    regressions = set(summary.get("regressions", []))
    failed = [r for r in rows if not (r.get("tuned") or {}).get("passed", True)]
    failed.sort(key=lambda r: r["id"] not in regressions)
    return {"summary": summary, "table": table, "failed": failed[:12], "regressions": regressions,
            "worse": bool(summary.get("tuned_worse")), "img": _redteam_chart(summary, categories)}


def _latency_context(metrics: EvalMetrics) -> list[dict[str, str]]:
    rows = []
    for name, scores in (("base", metrics.base), ("tuned", metrics.tuned)):
        latency = scores.latency if scores else {}
        single, batched = latency.get("single", {}), latency.get("batched", {})
        if single or batched:
            rows.append({
                "model": name,
                "ttft_single": f"{1000 * single['ttft_mean']:.0f} ms" if single else "—",
                "tps_single": f"{single['tokens_per_s']:.1f}" if single else "—",
                "ttft_batched": f"{1000 * batched['ttft_mean']:.0f} ms" if batched else "—",
                "throughput": f"{batched['throughput_tokens_per_s']:.1f}" if batched else "—",
            })
    return rows


def _judge_context(judge: dict | None) -> dict[str, Any] | None:
    if not judge:
        return None
    return {**judge, "img": _judge_chart(judge) if judge.get("n") else ""}


def _human_context(human: dict | None) -> dict[str, Any] | None:
    if not human or not isinstance(human.get("criteria"), dict):
        return None

    def mean_ci(cell: dict | None) -> str:
        return f"{cell['mean']:.2f} ({cell['low']:.2f}–{cell['high']:.2f})" if cell else "—"

    rows = []
    for name, entry in human["criteria"].items():
        agreement, delta = entry.get("agreement", {}), entry.get("delta")
        kappa = agreement.get("fleiss_kappa")
        rows.append({"name": name, "base": mean_ci(entry.get("base")), "tuned": mean_ci(entry.get("tuned")),
                     "delta": f"{delta['mean']:+.2f} ({delta['low']:+.2f} … {delta['high']:+.2f})" if delta else "—",
                     "cls": _direction(delta["mean"], "higher") if delta else "",
                     "kappa": _fmt(kappa, 2) if kappa is not None else agreement.get("note", "—")})
    return {"n_raters": human.get("n_raters"), "n_items": human.get("n_items"), "criteria": rows}


def _extremes(samples: list[dict], k: int = 3) -> list[dict]:
    """The k samples where tuning gained most and the k where it gained least (by ROUGE-L)."""
    if not samples or "base" not in samples[0]:
        return [{**s, "tag": ""} for s in samples[: 2 * k]]
    ranked = sorted(samples, key=lambda s: s["tuned"].get("rougeL", 0) - s["base"].get("rougeL", 0), reverse=True)
    best = [{**s, "tag": "best"} for s in ranked[:k]]
    worst = [{**s, "tag": "worst"} for s in ranked[-k:] if s not in ranked[:k]]
    for s in best + worst:
        s["delta"] = s["tuned"].get("rougeL", 0) - s["base"].get("rougeL", 0)
    return best + worst


# ---------------------------------------------------------------------------------------------------------
# Plots: matplotlib SVG, embedded as data: images


def _loss_curve(history: list[dict]) -> str:
    points = [h for h in history if isinstance(h.get("loss"), (int, float))]
    if not points:
        return ""
    plt, fig, ax = figure(7.5, 3.0)
    ax.plot([h["step"] for h in points], [h["loss"] for h in points], label="training loss", color=TUNED_COLOR)
    val = [h for h in history if isinstance(h.get("val_loss"), (int, float))]
    if val:
        ax.plot([h["step"] for h in val], [h["val_loss"] for h in val], "o-", label="validation loss", color="#dd7700")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("answer-token loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return to_data_uri(plt, fig)


def _funnel_chart(funnel: dict) -> str:
    if not funnel.get("read"):
        return ""
    labels, values, colors = ["read"], [funnel["read"]], [BASE_COLOR]
    for stage, n in (funnel.get("rejected") or {}).items():
        labels.append(f"rejected: {stage}")
        values.append(n)
        colors.append(BAD)
    for key in ("usable", "train", "val", "test"):
        if key in funnel:
            labels.append(key)
            values.append(funnel[key])
            colors.append(GOOD if key == "usable" else TUNED_COLOR)
    plt, fig, ax = figure(7.5, 0.35 * len(labels) + 0.8)
    bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.bar_label(bars, padding=3)
    ax.set_xlabel("records")
    return to_data_uri(plt, fig)


def _delta_chart(ci: dict) -> str:
    keys = [m.key for m in METRICS if m.key in ci] + (["perplexity_change_pct"] if "perplexity_change_pct" in ci else [])
    keys = [k for k in keys if k != "perplexity"]
    if not keys:
        return ""
    labels = LABELS
    labels["perplexity_change_pct"] = "perplexity (% change)"
    plt, fig, ax = figure(7.5, 0.35 * len(keys) + 0.9)
    for y, key in enumerate(reversed(keys)):
        row = ci[key]
        good = (row["mean"] > 0) == (row["better"] == "higher") and row["mean"] != 0
        color = GOOD if good and (row["low"] > 0 or row["high"] < 0) else (BAD if not good and (row["low"] > 0 or row["high"] < 0) else BASE_COLOR)
        ax.errorbar(row["mean"], y, xerr=[[row["mean"] - row["low"]], [row["high"] - row["mean"]]], fmt="o",
                    color=color, capsize=3)
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_yticks(range(len(keys)), [labels[k] for k in reversed(keys)])
    ax.set_xlabel("tuned − base (95% paired bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    return to_data_uri(plt, fig)


def _redteam_chart(summary: dict, categories: list[str]) -> str:
    if not categories:
        return ""
    import numpy as np

    plt, fig, ax = figure(7.5, 2.8)
    x = np.arange(len(categories))
    names = [n for n in ("base", "tuned") if summary.get(n)]
    for i, name in enumerate(names):
        cells = [summary[name]["by_category"].get(c, {"passed": 0, "total": 0}) for c in categories]
        rates = [100 * c["passed"] / c["total"] if c["total"] else 0 for c in cells]
        ax.bar(x + (i - (len(names) - 1) / 2) * 0.38, rates, 0.38, label=name,
               color=BASE_COLOR if name == "base" else TUNED_COLOR)
    ax.set_xticks(x, [c.replace("_", "\n") for c in categories])
    ax.set_ylabel("probes passed (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    return to_data_uri(plt, fig)


def _judge_chart(judge: dict) -> str:
    plt, fig, ax = figure(7.5, 1.6)
    left = 0
    for key, label, color in (("wins", "tuned wins", GOOD), ("ties", "tie", BASE_COLOR), ("losses", "base wins", BAD),
                              ("invalid", "no verdict", "#dddddd")):
        value = judge.get(key, 0) or 0
        if value:
            ax.barh([0], [value], left=left, color=color, label=f"{label} ({value})")
            left += value
    ax.set_yticks([])
    ax.set_xlabel("examples")
    ax.legend(ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.02), frameon=False)
    return to_data_uri(plt, fig)


def _read_json(path: Path, problems: list[str]) -> dict:
    """A JSON object, or {} with the problem noted for the report's warning box."""
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        problems.append(f"{path.name} could not be read ({err}); its section is left out")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path.name} does not hold a JSON object; its section is left out")
        return {}
    return value


def _read_jsonl(path: Path, problems: list[str]) -> list[dict]:
    """The readable rows of a JSONL file; damaged lines are skipped and counted, not fatal."""
    if not path.is_file():
        return []
    rows, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(number)
    if bad:
        problems.append(f"{path.name}: {len(bad)} unreadable line(s) skipped (lines {bad[:5]})")
    return rows
