"""`r1tune traces`: the teacher writes reasoning traces for a run's trace-less training records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()


def traces(run_folder: Annotated[Path, typer.Argument(help="A prepared run folder (runs/<run-id>).")]) -> None:
    """Ask the teacher (`teacher:` section; `source: self` uses the base model) for reasoning that reaches each
    trace-less training record's reference answer; kept traces train the think block, the rest are listed in
    data/traces_quarantine.jsonl. Re-running continues from the cache."""
    from r1tune.rundir import open_run
    from r1tune.teacher.traces import traces_for_run

    summary = traces_for_run(open_run(run_folder))
    asked = summary["records"] - summary["had_reasoning"]
    out.print(f"traces: {summary['traced']} of {asked} trace-less training records now carry reasoning; "
              f"{summary['quarantined']} kept their old form (reasons in data/traces_quarantine.jsonl)")
