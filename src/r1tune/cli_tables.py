"""The tables the CLI prints (base vs tuned, runs, compare, human ratings), built from the typed results
so `cli.py` stays a thin layer of commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from r1tune.artifacts import EvalMetrics
    from r1tune.loop.runs import RunRow


def comparison_table(metrics: EvalMetrics) -> Table:
    from r1tune.eval.metric_info import METRICS

    table = Table(title=f"base vs tuned on {metrics.n_examples} test examples")
    for column in ("metric", "base", "tuned", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for info in (m for m in METRICS if m.in_terminal):
        tuned_v = metrics.tuned.value(info.key)
        base_v = metrics.base.value(info.key) if metrics.base else None
        if tuned_v is None:
            continue
        change = ""
        if base_v is not None and (info.key != "perplexity" or base_v > 0):
            change = f"{100 * (tuned_v / base_v - 1):+.1f}%" if info.key == "perplexity" else f"{tuned_v - base_v:+.2f}"
        table.add_row(info.label, f"{base_v:.2f}" if base_v is not None else "—", f"{tuned_v:.2f}", change)
    return table


def runs_table(rows: list[RunRow]) -> Table:
    table = Table(title=f"runs in {rows[0].path.parent}")
    numbers = ("key facts", "perplexity", "ROUGE-L")
    for column in ("run", "status", "method", "train / test", "verdict", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for r in rows:
        status = r.status + (f" ({r.error})" if r.error and r.status == "failed" else "")
        size = f"{r.train_records} / {r.test_records}" if r.train_records is not None else "—"
        ppl = f"{r.perplexity_change_pct:+.1f}%" if r.perplexity_change_pct is not None else r.note[:40] or "—"
        rouge = f"{r.rougeL_delta:+.1f}" if r.rougeL_delta is not None else "—"
        facts = f"{r.key_fact_delta:+.1f}" if r.key_fact_delta is not None else "—"
        verdict = {"better": "[green]better[/]", "worse": "[red]worse[/]"}.get(r.verdict or "", r.verdict or "—")
        table.add_row(r.run_id, status, r.method or "—", size, verdict, facts, ppl, rouge)
    return table


def verdict_line(metrics: EvalMetrics) -> str:
    """The report's headline as one terminal line (rich markup); empty without a base."""
    from rich.markup import escape

    from r1tune.eval.verdict import decide

    verdict = decide(metrics)
    if verdict is None:
        return ""
    head, detail = {
        "better": ("[bold green]tuned is better than base:[/] ", verdict.evidence[:2]),
        "worse": ("[bold red]tuned is worse than base:[/] ", verdict.reasons),
        "unclear": ("[bold yellow]tuned is not clearly better than base:[/] ", verdict.reasons),
    }[verdict.outcome]
    slice_note = f" — worst slice got worse: {verdict.worst_slice}" if verdict.worst_slice else ""
    return head + escape("; ".join(detail) + slice_note)


def human_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"human evaluation: {results['n_raters']} rater(s), {results['n_items']} items")
    for column in ("criterion", "base", "tuned", "tuned − base", "Fleiss' κ"):
        table.add_column(column, justify="left" if column == "criterion" else "right")
    for name, entry in results["criteria"].items():
        cells = [f"{entry[m]['mean']:.2f} ({entry[m]['low']:.2f}–{entry[m]['high']:.2f})" if m in entry else "—"
                 for m in ("base", "tuned")]
        delta = entry.get("delta")
        kappa = entry["agreement"].get("fleiss_kappa")
        table.add_row(name, *cells, f"{delta['mean']:+.2f}" if delta else "—",
                      f"{kappa:.2f}" if isinstance(kappa, float) else "—")
    return table


def compare_output(result: dict[str, Any]) -> list[Any]:
    """What `r1tune compare` prints, in order: config differences, the metrics table, notes."""
    a, b = result["a"]["run"], result["b"]["run"]
    parts: list[Any] = []
    if result["config_diff"]:
        diff = Table(title="config differences")
        for column in ("key", f"A {a}", f"B {b}"):
            diff.add_column(column, overflow="fold")
        for row in result["config_diff"]:
            diff.add_row(row["key"], str(row["a"]), str(row["b"]))
        parts.append(diff)
    else:
        parts.append("the two runs have the same config")
    parts.append(_metrics_table(result["metrics"]))
    if result["redteam_tuned_passed"]:
        parts.append("red-team probes passed (tuned): " + ", ".join(f"{k.upper()} {v}" for k, v in
                                                                    result["redteam_tuned_passed"].items()))
    if result["same_test_set"] is False:
        parts.append("[yellow]note: the runs were scored on different test sets; compare with care[/]")
    return parts


def _metrics_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="metrics (A vs B)")
    for column in ("metric", "A base", "A tuned", "B base", "B tuned", "B − A (tuned)"):
        table.add_column(column, justify="left" if column == "metric" else "right")

    def cell(value: Any, digits: int) -> str:
        return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"

    for row in rows:
        change = cell(row["b_minus_a"], max(row["digits"], 1))
        style = {True: "green", False: "red"}.get(row["b_better"])
        table.add_row(row["label"], cell(row["a_base"], row["digits"]), cell(row["a_tuned"], row["digits"]),
                      cell(row["b_base"], row["digits"]), cell(row["b_tuned"], row["digits"]),
                      f"[{style}]{change}[/]" if style else change)
    return table


def business_table(rows: list[dict]) -> Any:
    """`r1tune feedback stats`: one row per model version and period."""
    table = Table(title="served answers by version and period")
    for column in ("period", "model", "version", "volume", "rated", "accepted", "corrected", "edit rate",
                   "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column in ("period", "model", "version") else "right")
    for r in rows:
        table.add_row(r["period"], r["model"], r["version"], str(r["volume"]), str(r["rated"]),
                      _pct(r["acceptance_rate"]), _pct(r["correction_rate"]), _pct(r["human_edit_rate"]),
                      f"{r['latency_p50_ms']:.0f}", f"{r['latency_p95_ms']:.0f}")
    return table


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"
