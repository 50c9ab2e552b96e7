"""`r1tune deploy`: the files that run a run's model as a service (see `export/deploy_kit.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

deploy_app = typer.Typer(no_args_is_help=True, help="Container and Kubernetes files for serving a run.")
out = Console()


@deploy_app.command("kit")
def deploy_kit(
    run_folder: Annotated[Path, typer.Argument(help="A trained run folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Empty folder for the kit.")],
    name: Annotated[str, typer.Option(help="Service name (Kubernetes objects, vLLM served model name).")] = "r1tune",
    image: Annotated[str, typer.Option(help="Image tag the CPU image is built and deployed as.")] = "r1tune-serve:latest",
) -> None:
    """Dockerfiles (CPU: r1tune's server; CUDA: vLLM), compose with PostgreSQL, Kubernetes manifests with an
    autoscaler on the request queue. Only the run's trained result and config are copied, never its data."""
    from r1tune.export.deploy_kit import write_kit
    from r1tune.rundir import open_run

    files = write_kit(open_run(run_folder), out_dir, name, image)
    out.print(f"deploy kit written to {out_dir}: " + ", ".join(str(f.relative_to(out_dir)) for f in files))
