"""`r1tune labels`: the Label Studio round trip from the command line (see `data/label_studio.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from r1tune.errors import DataError

labels_app = typer.Typer(no_args_is_help=True, help="Label Studio round trip: export tasks, measure agreement.")
out = Console()


@labels_app.command("export")
def labels_export(
    source: Annotated[Path, typer.Argument(help="A run folder (its prepared split) or a records JSONL file.")],
    out_path: Annotated[Path, typer.Option("--out", help="Label Studio tasks JSON to write.")],
    split: Annotated[str, typer.Option(help="With a run folder: train, val or test.")] = "train",
) -> None:
    """Write records as Label Studio tasks, the current answer as a prediction to correct (TextArea `answer`)."""
    from r1tune.data.label_studio import export_tasks
    from r1tune.data.records import read_jsonl

    path = source / "data" / f"{split}.jsonl" if source.is_dir() else source
    if not path.is_file():
        raise DataError(f"{path} does not exist", hint="pass a run folder after `r1tune prepare`, or a JSONL file")
    records = list(read_jsonl(path))
    export_tasks(records, out_path)
    out.print(f"{len(records)} tasks → {out_path} (import annotations back with format: label_studio)")


@labels_app.command("agreement")
def labels_agreement(
    export: Annotated[Path, typer.Argument(help="A Label Studio JSON export with several annotators per task.")],
) -> None:
    """Agreement per field: Cohen's/Fleiss' kappa and Krippendorff's alpha (text fields by similarity)."""
    from r1tune.data.label_studio import annotation_agreement

    try:
        tasks = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{export}: not a readable Label Studio JSON export ({err})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{export}: a Label Studio export is a JSON list of tasks, got {type(tasks).__name__}")
    fields = annotation_agreement(tasks)
    if not fields:
        out.print("no field was annotated by two or more people: agreement cannot be measured")
        return
    table = Table(title=f"agreement in {export.name}")
    for column in ("field", "kind", "tasks", "Cohen's κ", "Fleiss' κ", "Krippendorff's α"):
        table.add_column(column)
    for name, row in fields.items():
        cells = [row.get(k) for k in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha")]
        table.add_row(name, row["kind"], str(row["tasks"]), *("—" if c is None else f"{c:.3f}" for c in cells))
    out.print(table)
