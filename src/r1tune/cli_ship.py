"""Shipping a run: `r1tune export` (export/formats.py) and `r1tune deploy kit` (export/deploy_kit.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

RunArg = Annotated[Path, typer.Argument(help="A run folder (runs/<run-id>) or a runs folder (newest run).")]


def export(
    run_folder: RunArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the export.")],
    fmt: Annotated[str, typer.Option("--format", help="merged | gguf | ollama | int8 | gptq | awq | vllm.")] = "merged",
    dtype: Annotated[str, typer.Option(help="merged weights: bf16 (half the size) or fp32.")] = "bf16",
    quant: Annotated[str, typer.Option(help="gguf/ollama: f16, q8_0, or (with llama-cpp-python) q4_k_m, q5_k_m, q6_k.")] = "q8_0",
    verify: Annotated[bool, typer.Option(help="Load the export back and compare it with the run.")] = True,
) -> None:
    """Ship a run's result: a merged safetensors model, a GGUF (llama.cpp), an Ollama model, CPU INT8,
    4-bit GPTQ/AWQ (CUDA) or a folder vLLM serves as is, each with a model card; `--verify` proves it
    answers like the run on its held-out prompts. Unsupported requests fail before any weights load."""
    from r1tune.export import export_run
    from r1tune.export.formats import ExportOptions
    from r1tune.rundir import open_run

    options = ExportOptions(fmt=fmt, dtype=dtype, quant=quant, verify=verify)  # type: ignore[arg-type]
    path, check = export_run(open_run(run_folder), out_dir, options)
    out.print(f"{fmt} export written to {path}, model card {path / 'README.md'}")
    if check is not None and check.get("n"):
        style = "green" if check["passed"] else "bold red"
        detail = "; ".join(check.get("problems") or []) or (check.get("method") or
                  f"greedy answers agree on {100 * check['greedy_agreement']:.0f}% ({check['n']} prompts), "
                  f"perplexity {check['perplexity_change_pct']:+.2f}% (±{check['tolerance_pct']}%)")
        out.print(f"[{style}]verification {'passed' if check['passed'] else 'FAILED'}[/]: {escape(detail)}")


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
