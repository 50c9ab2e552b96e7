"""`r1tune versions`: the model version registry (see `serve/versions.py`)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

versions_app = typer.Typer(no_args_is_help=True, help="Model versions: register, promote, roll back, compare.")
out = Console()
TargetArg = Annotated[Path, typer.Argument(help="The project file or a run folder (its database holds the registry).")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="Registry database (default: the project's).")]
ReasonOpt = Annotated[str, typer.Option(help="Why (kept with the change).")]
ServerOpt = Annotated[str | None, typer.Option(help="A running r1tune server (e.g. http://10.0.0.7:8000) to swap "
                                               "the version into, without a restart, before the registry changes.")]
KeyEnvOpt = Annotated[str, typer.Option(help="Environment variable with that server's admin key.")]


def _swap_into(server: str | None, key_env: str, name: str, run_path: str) -> None:
    from r1tune.serve.versions import swap_into_server

    if server is not None:
        swap_into_server(server, key_env, name, run_path)
        out.print(f"{server} now serves {name} from {run_path}")


def _registry(target: Path, database_url: str | None):
    from r1tune.serve import FeedbackStore, default_database_url, resolve_target
    from r1tune.serve.versions import VersionRegistry

    return VersionRegistry(FeedbackStore(database_url or default_database_url(resolve_target(target).cfg)))


@versions_app.command("register")
def register(target: TargetArg, run_folder: Annotated[Path, typer.Argument(help="The trained run to register.")],
             name: Annotated[str, typer.Option(help="Adapter name the version serves under.")],
             parent: Annotated[str | None, typer.Option(help="The version it was trained from.")] = None,
             database_url: DbOpt = None) -> None:
    """Register a trained run as a candidate version."""
    from r1tune.rundir import open_run

    row = _registry(target, database_url).register(open_run(run_folder), name, parent)
    out.print(f"registered {row.id} as a candidate of {row.name}")


@versions_app.command("list")
def list_versions(target: TargetArg, name: Annotated[str | None, typer.Option(help="Only this name.")] = None,
                  database_url: DbOpt = None) -> None:
    """Every version, oldest first."""
    table = Table(title="model versions")
    for column in ("id", "name", "status", "parent", "kind", "changed", "by", "reason"):
        table.add_column(column)
    for v in _registry(target, database_url).list(name):
        table.add_row(v.id, v.name, v.status, v.parent or "", v.kind, str(v.changed_at or v.created)[:19],
                      v.changed_by or "", v.reason or "")
    out.print(table)


@versions_app.command("show")
def show(target: TargetArg, version: str, database_url: DbOpt = None) -> None:
    """One version's record."""
    from r1tune.serve.versions import dumps

    out.print_json(dumps(_registry(target, database_url).get(version)))


@versions_app.command("promote")
def promote(target: TargetArg, version: str, reason: ReasonOpt = "promoted by hand",
            force: Annotated[bool, typer.Option(help="Promote even a rejected version.")] = False,
            server: ServerOpt = None, key_env: KeyEnvOpt = "R1TUNE_ADMIN_KEY", database_url: DbOpt = None) -> None:
    """Make a version live (the live one of its name retires); with --server, swap it into that server first."""
    registry = _registry(target, database_url)
    candidate = registry.promotable(version, force)  # refused before the server is touched
    _swap_into(server, key_env, candidate.name, candidate.run_path)
    row = registry.promote(version, getpass.getuser(), reason, force)
    out.print(f"{row.id} is live for {row.name}")


@versions_app.command("reject")
def reject(target: TargetArg, version: str, reason: ReasonOpt, database_url: DbOpt = None) -> None:
    """Mark a version rejected, with the reason."""
    row = _registry(target, database_url).reject(version, getpass.getuser(), reason)
    out.print(f"{row.id} rejected: {row.reason}")


@versions_app.command("rollback")
def rollback(target: TargetArg, name: str, reason: ReasonOpt = "rolled back by hand", server: ServerOpt = None,
             key_env: KeyEnvOpt = "R1TUNE_ADMIN_KEY", database_url: DbOpt = None) -> None:
    """The live version of NAME retires; the one live before it is live again (swapped into --server first)."""
    registry = _registry(target, database_url)
    previous = registry.previous_live(name)
    _swap_into(server, key_env, name, previous.run_path)
    row = registry.rollback(name, getpass.getuser(), reason)
    out.print(f"{row.id} is live again for {row.name}")


@versions_app.command("diff")
def diff(target: TargetArg, a: str, b: str, database_url: DbOpt = None) -> None:
    """Config, data and headline-metric changes from version A to B."""
    change = _registry(target, database_url).diff(a, b)
    out.print("same training data" if change["same_data"] else "different training data")
    for line in change["config"]:
        out.print(line, markup=False, highlight=False)
    for metric, (before, after) in change["metrics"].items():
        out.print(f"{metric}: {before} → {after}")
