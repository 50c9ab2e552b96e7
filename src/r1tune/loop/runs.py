"""`r1tune runs`: every run of a project, newest first, with what a user looks for first: did it finish,
what did it train, on how much data, and did it beat the base."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from r1tune.artifacts import ArtifactError
from r1tune.errors import R1TuneError
from r1tune.eval.verdict import decide
from r1tune.rundir import RunDir


@dataclass(frozen=True)
class RunRow:
    run_id: str
    path: Path
    status: str
    error: str | None
    method: str | None
    train_records: int | None
    test_records: int | None
    perplexity_change_pct: float | None  # tuned vs base on the test answers
    rougeL_delta: float | None
    key_fact_delta: float | None = None  # key-fact recall, tuned minus base (points)
    verdict: str | None = None  # better / worse / unclear, as the report's headline decides it
    note: str = ""  # e.g. a metrics file that could not be read


def runs_folder(target: Path) -> Path:
    """The runs folder of a project file, a project folder, or a runs folder itself."""
    from r1tune.config import CONFIG_FILENAME
    from r1tune.configfile import load_config

    if target.is_file() or (target / CONFIG_FILENAME).is_file():
        return load_config(target).project.runs_dir
    if target.is_dir():
        return target
    raise R1TuneError(f"{target} is neither a project file nor a runs folder",
                      hint="pass the project's r1tune.yaml, its folder, or its runs/ folder")


def list_runs(runs_dir: Path) -> list[RunRow]:
    """One row per run folder under `runs_dir`, newest first (run ids start with their UTC start time)."""
    folders = sorted((p.parent for p in runs_dir.glob("*/config.yaml")), key=lambda p: p.name, reverse=True)
    return [_row(RunDir(folder)) for folder in folders]


def _row(run: RunDir) -> RunRow:
    status, error = run.status()
    info = run.read_info()
    funnel = _funnel(run)
    ppl = rouge = facts = verdict = None
    note = ""
    if run.metrics.is_file():
        try:
            metrics = run.read_metrics()
            ppl, rouge, facts = (metrics.perplexity_change_pct(), metrics.delta.get("rougeL"),
                                 metrics.delta.get("key_fact_recall"))
            decided = decide(metrics)
            verdict = decided.outcome if decided else None
        except ArtifactError as err:
            note = err.message
    return RunRow(run.run_id, run.path, status, error, info.get("method"), funnel.get("train"), funnel.get("test"),
                  ppl, rouge, facts, verdict, note)


def _funnel(run: RunDir) -> dict:
    try:
        return run.read_data_report().funnel.model_dump()
    except ArtifactError:
        return {}
