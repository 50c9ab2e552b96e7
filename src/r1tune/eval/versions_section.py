"""The report's improvement-loop section, for a run the loop trained: its gate (each check, candidate vs
live) and the adapter name's versions with their business numbers per week, plotted over time."""

from __future__ import annotations

from typing import Any

from r1tune.artifacts import ArtifactError, GateDecision, VersionHistory, read_artifact
from r1tune.eval.svg import figure, to_data_uri
from r1tune.rundir import RunDir

RATES = (("acceptance_rate", "accepted (thumbs up / rated)", "-"), ("human_edit_rate", "human edit rate", "--"),
         ("correction_rate", "corrected", ":"))


def versions_context(run: RunDir, problems: list[str]) -> dict[str, Any] | None:
    """None for a run the loop did not train; else its gate, version rows and plot."""
    folder = run.path / "loop"
    if not (folder / "gate.json").is_file():
        return None
    gate = _read(folder / "gate.json", GateDecision, problems)
    history = _read(folder / "versions.json", VersionHistory, problems) if (folder / "versions.json").is_file() else None
    return {"gate": gate, "versions": history.versions if history else [],
            "business": [_percent_row(r) for r in history.business] if history else [],
            "plot": _business_plot(history.business) if history else ""}


def _read(path, model, problems: list[str]) -> Any:
    try:
        return read_artifact(path, model)
    except ArtifactError as err:
        problems.append(err.message)
        return None


def _percent_row(row: dict[str, Any]) -> dict[str, Any]:
    def pct(value: Any) -> str:
        return "—" if value is None else f"{100 * value:.0f}%"

    return {**row, **{key: pct(row.get(key)) for key, _, _ in RATES},
            "latency_p50_ms": f"{row.get('latency_p50_ms', 0):.0f}", "latency_p95_ms": f"{row.get('latency_p95_ms', 0):.0f}"}


def _business_plot(rows: list[dict[str, Any]]) -> str:
    """Acceptance, edit and correction rates per period, one colour per served version."""
    if not rows:
        return ""
    periods = sorted({r["period"] for r in rows})
    plt, fig, ax = figure(7.5, 3.0)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = {r["version"]: r.get("version_id") or r["version"] for r in rows}
    for i, (weights, version) in enumerate(sorted(names.items())):
        mine = sorted((r for r in rows if r["version"] == weights), key=lambda r: r["period"])
        for key, label, style in RATES:
            points = [(periods.index(r["period"]), 100 * r[key]) for r in mine if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), style, marker="o", color=colours[i % len(colours)],
                        label=f"{version}: {label}")
    ax.set_xticks(range(len(periods)), periods)
    ax.set_ylabel("% of served answers")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_data_uri(plt, fig)
