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


def synth(config: Annotated[Path, typer.Argument(help="Project file (r1tune.yaml) or its folder.")],
          overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides.")] = None,
          out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default: <project>/synth).")] = None,
          ) -> None:
    """The teacher writes question-answer records from `teacher.synth_documents`, checked for grounding,
    near-duplicates and test leaks, with review files (CSV, XLSX, Label Studio) for a person to accept."""
    from r1tune.configfile import load_config
    from r1tune.teacher.jobs import synth_for_project

    cfg = load_config(config, overrides or [])
    target = out_dir or ((config if config.is_dir() else config.parent) / "synth")
    summary = synth_for_project(cfg, target)
    out.print(f"synth: {summary['kept']} records from {summary['chunks']} chunks ({summary['quarantined']} dropped, "
              f"reasons in quarantine.jsonl) → review {target / 'review.xlsx'}, then `r1tune synth-accept {target} "
              "REVIEW_FILE --out accepted.jsonl`")


def synth_accept(synth_dir: Annotated[Path, typer.Argument(help="The folder `r1tune synth` wrote.")],
                 review_file: Annotated[Path, typer.Argument(help="The filled review.csv / review.xlsx, or a Label "
                                                             "Studio JSON export of its tasks.")],
                 out_file: Annotated[Path, typer.Option("--out", help="JSONL of the accepted records.")]) -> None:
    """Keep the records a reviewer accepted (with their edits), as a data source for `data.sources`."""
    from r1tune.teacher.review import apply_review, write_accepted

    outcome = apply_review(review_file, synth_dir / "records.jsonl")
    write_accepted(outcome, out_file)
    out.print(f"{len(outcome.accepted)} accepted ({outcome.edited} edited), {outcome.rejected} rejected, "
              f"{outcome.unreviewed} not reviewed → {out_file}")
