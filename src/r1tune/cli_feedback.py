"""`r1tune feedback`: what the server's users said, exported for retraining and counted per version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from r1tune.errors import R1TuneError

out = Console()

feedback_app = typer.Typer(no_args_is_help=True, help="Completion ratings and corrections from the server.")


@feedback_app.command("export")
def feedback_export(
    target: Annotated[Path, typer.Argument(help="The run folder or project file the server was started with.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for sft.jsonl and preferences.jsonl.")],
    database_url: Annotated[str | None, typer.Option(help="Store URL (default: the server's).")] = None,
) -> None:
    """Write corrected answers as SFT records and rated answers as preference pairs."""
    from r1tune.serve import FeedbackStore, default_database_url, export_feedback, resolve_target

    store = FeedbackStore(database_url or default_database_url(resolve_target(target).cfg))
    result = export_feedback(store, out_dir)
    out.print(f"{result.sft} SFT records → {result.sft_path}\n{result.preferences} preference pairs → "
              f"{result.preferences_path}")


@feedback_app.command("stats")
def feedback_stats(
    target: Annotated[Path, typer.Argument(help="The run folder or project file the server was started with.")],
    period: Annotated[str, typer.Option(help="day, week or month.")] = "week",
    database_url: Annotated[str | None, typer.Option(help="Store URL (default: the server's).")] = None,
) -> None:
    """Business numbers per model version and period: volume, acceptance, correction and edit rates, latency."""
    from r1tune.cli_tables import business_table
    from r1tune.serve import FeedbackStore, default_database_url, resolve_target
    from r1tune.serve.business import business_metrics

    if period not in ("day", "week", "month"):
        raise R1TuneError(f"--period must be day, week or month, not {period!r}")
    store = FeedbackStore(database_url or default_database_url(resolve_target(target).cfg))
    out.print(business_table(business_metrics(store.completions_with_feedback(), period)))  # type: ignore[arg-type]
