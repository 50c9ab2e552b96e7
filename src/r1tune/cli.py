"""The `r1tune` command: a thin layer over the stage APIs. Heavy libraries load inside commands only,
so `r1tune --help` is instant."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from r1tune.errors import R1TuneError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Turn DeepSeek-R1 (or any Hugging Face causal LM) into your domain expert.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect the config schema and resolved values.")
app.add_typer(config_app, name="config")
console = Console(stderr=True)
out = Console()

ConfigArg = Annotated[Path, typer.Argument(help="Project file (r1tune.yaml) or its folder.")]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. train.lr=1e-4.")]
RunArg = Annotated[Path, typer.Argument(help="A run folder (runs/<run-id>) or a runs folder (newest run).")]
EXAMPLES = ("ecommerce",)


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False) -> None:
    _setup_logging(verbose)
    if not verbose:  # r1tune draws its own progress bars; the libraries' per-file bars are noise here
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        warnings.filterwarnings("ignore", category=FutureWarning)


def _load(config: Path, overrides: list[str] | None):
    from r1tune.config import load_config

    return load_config(config, overrides or [])


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    example: Annotated[str, typer.Option(help=f"Example to copy: {', '.join(EXAMPLES)}.")] = "ecommerce",
) -> None:
    """Write a working project (data + r1tune.yaml) to DIRECTORY."""
    from importlib import resources

    if example not in EXAMPLES:
        raise R1TuneError(f"unknown example {example!r}", hint=f"choose one of: {', '.join(EXAMPLES)}")
    source = Path(str(resources.files("r1tune").joinpath("examples", example)))
    if directory.exists() and any(directory.iterdir()):
        raise R1TuneError(f"{directory} exists and is not empty", hint="pick a new folder")
    shutil.copytree(source, directory, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    out.print(f"wrote {directory}/ — next: [bold]r1tune run {directory / 'r1tune.yaml'}[/]")


@app.command()
def run(config: ConfigArg, overrides: OverridesArg = None,
        progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True) -> None:
    """Run the whole pipeline: prepare → train → eval → report."""
    from r1tune.loop import run_pipeline

    cfg = _load(config, overrides)
    result = run_pipeline(cfg, show_progress=progress,
                          on_stage=lambda name, r: console.print(f"[bold cyan]▶ {name}[/]  ({r.path})"))
    _print_comparison(result.metrics)
    _print_run_files(result.run)


@app.command("prepare")
def prepare_cmd(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Read, check and split the data into a new run folder (no model needed)."""
    from r1tune.data import prepare
    from r1tune.rundir import create_run

    cfg = _load(config, overrides)
    run_dir = create_run(cfg)
    data = prepare(cfg.data, run_dir.data, cfg.project.seed)
    funnel = data.report["funnel"]
    out.print(f"read {funnel['read']} · rejected {funnel['rejected'] or 0} · usable {funnel['usable']} → "
              f"train {funnel['train']} / val {funnel['val']} / test {funnel['test']}")
    out.print(f"prepared data in {run_dir.data}")


@app.command("train")
def train_cmd(run_folder: RunArg, progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True) -> None:
    """Train an adapter on a run folder's prepared data (from `r1tune prepare`)."""
    from r1tune.loop import train_stage
    from r1tune.rundir import open_run

    run_dir = open_run(run_folder)
    train_stage(run_dir.load_config(), run_dir, show_progress=progress)
    out.print(f"adapter saved to {run_dir.adapter}")


@app.command("eval")
def eval_cmd(run_folder: RunArg, progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True) -> None:
    """Evaluate a run's adapter against the base model on its test split, and rewrite the report."""
    from r1tune.eval import write_report
    from r1tune.loop import eval_stage
    from r1tune.rundir import open_run

    run_dir = open_run(run_folder)
    metrics = eval_stage(run_dir.load_config(), run_dir, show_progress=progress)
    write_report(run_dir)
    _print_comparison(metrics)


@app.command()
def report(run_folder: RunArg) -> None:
    """(Re)write report.html of a run from its files."""
    from r1tune.eval import write_report
    from r1tune.rundir import open_run

    out.print(f"report: {write_report(open_run(run_folder))}")


@app.command("show-sample")
def show_sample(
    config: ConfigArg,
    n: Annotated[int, typer.Option("-n", help="How many records to show.")] = 2,
    overrides: OverridesArg = None,
) -> None:
    """Print rendered training records with the trained tokens highlighted (the mask viewer)."""
    from rich.text import Text

    from r1tune import models
    from r1tune.data import Quarantine, read_source

    cfg = _load(config, overrides)
    loaded = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, with_weights=False)
    records = []
    for source in cfg.data.sources:
        for record in read_source(source, Quarantine()):
            records.append(record)
            if len(records) >= n:
                break
        if len(records) >= n:
            break
    # Colour where the terminal shows it; elsewhere (logs, pipes) trained spans are bracketed ⟦like this⟧.
    markers = not out.is_terminal
    legend = "⟦trained⟧ · not trained" if markers else "[bold green on grey15]trained[/] · [dim]not trained[/]"
    out.print(f"format [bold]{loaded.renderer.fmt.name}[/] · {legend}\n")
    for record in records:
        rendered = loaded.renderer.render_training(record, cfg.train.max_seq_len)
        text = Text()
        for span, trained in _mask_spans(loaded.tokenizer, rendered):
            if markers:
                text.append(f"⟦{span}⟧" if trained else span)
            else:
                text.append(span, style="bold green on grey15" if trained else "dim")
        out.print(f"[bold]{record.source}[/]  {len(rendered.input_ids)} tokens, {rendered.num_trained} trained"
                  + ("  [red](truncated)[/]" if rendered.truncated else ""))
        out.print(text)
        out.print()


def _mask_spans(tokenizer, rendered) -> list[tuple[str, bool]]:
    """Consecutive tokens with the same mask, decoded together (so multi-byte characters stay whole)."""
    spans: list[tuple[list[int], bool]] = []
    for token_id, trained in zip(rendered.input_ids, rendered.trained, strict=True):
        if spans and spans[-1][1] == trained:
            spans[-1][0].append(token_id)
        else:
            spans.append(([token_id], trained))
    return [(tokenizer.decode(ids, skip_special_tokens=False), trained) for ids, trained in spans]


@app.command()
def generate(
    target: Annotated[Path, typer.Argument(help="A run folder (tuned model) or a project file (base model).")],
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    base: Annotated[bool, typer.Option(help="Use the base model even when given a run.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Token limit.")] = 256,
    temperature: Annotated[float | None, typer.Option(help="Default: the preset's (0 = greedy).")] = None,
) -> None:
    """Answer one prompt with a base or tuned model."""
    from r1tune.data import Message

    loaded, precision = _load_for_chat(target, base)
    answer = _answer(loaded, precision, [Message("user", prompt)], max_new_tokens, temperature)
    if answer.reasoning:
        out.print(f"[dim]<think>\n{answer.reasoning}\n</think>[/]")
    out.print(answer.answer)


@app.command()
def chat(
    target: Annotated[Path, typer.Argument(help="A run folder (tuned model) or a project file (base model).")],
    base: Annotated[bool, typer.Option(help="Use the base model even when given a run.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Token limit per answer.")] = 256,
) -> None:
    """Talk to a base or tuned model in the terminal (empty line or Ctrl-D quits)."""
    from r1tune.data import Message

    loaded, precision = _load_for_chat(target, base)
    history: list[Message] = []
    out.print("[dim]type a message; empty line to quit[/]")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        history.append(Message("user", line))
        answer = _answer(loaded, precision, history, max_new_tokens, None)
        if answer.reasoning:
            out.print(f"[dim]{answer.reasoning}[/]")
        out.print(f"[bold]model>[/] {answer.answer}")
        history.append(Message("assistant", answer.answer))


def _load_for_chat(target: Path, base: bool):
    from r1tune import models
    from r1tune.models.precision import resolve_precision
    from r1tune.rundir import RunDir

    if (target / "config.yaml").is_file():
        run_dir = RunDir(target)
        cfg = run_dir.load_config()
        adapter = None if base else run_dir.adapter
    else:
        cfg = _load(target, [])
        adapter = None
    loaded = models.load(cfg.model, cfg.train.reasoning, adapter=adapter)
    return loaded, resolve_precision(cfg.train.precision)


def _answer(loaded, precision, messages, max_new_tokens, temperature):
    from r1tune.models.generation import generate as run_generate

    sampling = loaded.sampling
    temp = sampling["temperature"] if temperature is None else temperature
    prompt = loaded.renderer.render_prompt(messages)
    return run_generate(loaded.model, loaded.renderer, [prompt], max_new_tokens, temperature=temp,
                        top_p=sampling["top_p"], precision=precision)[0]


@app.command()
def export(
    run_folder: RunArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the merged model.")],
) -> None:
    """Merge a run's LoRA adapter into the base weights and save a standalone safetensors model."""
    from r1tune.export import merge_adapter
    from r1tune.rundir import open_run

    run_dir = open_run(run_folder)
    info = run_dir.read_info()
    path = merge_adapter(run_dir.load_config().model, run_dir.adapter, out_dir, info.get("chat_format", "auto"))
    out.print(f"merged model written to {path}")


@app.command("models")
def list_models() -> None:
    """List the model presets."""
    from rich.table import Table

    from r1tune.models.presets import presets

    table = Table()
    for column in ("preset", "hub id", "architecture", "params", "format", "temperature/top_p", "system prompt"):
        table.add_column(column, overflow="fold")
    for p in presets().values():
        table.add_row(p.name + (" (embedded)" if p.embedded else ""), p.hub_id, p.architecture, p.params,
                      p.chat_format, f"{p.sampling.temperature}/{p.sampling.top_p}", p.system_prompt)
    out.print(table)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of r1tune.yaml."""
    from r1tune.config import R1TuneConfig

    print(json.dumps(R1TuneConfig.model_json_schema(), indent=2))


@config_app.command("show")
def config_show(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Print the resolved config (defaults filled in, overrides applied, paths absolute)."""
    from r1tune.config import dump_config

    print(dump_config(_load(config, overrides)), end="")


@config_app.command("docs")
def config_docs() -> None:
    """Print the config reference as Markdown (the README's reference section)."""
    from r1tune.config import config_reference_markdown

    print(config_reference_markdown(), end="")


def _print_comparison(metrics: dict) -> None:
    from rich.table import Table

    if "tuned" not in metrics:
        return
    table = Table(title=f"base vs tuned on {metrics['n_examples']} test examples")
    table.add_column("metric")
    table.add_column("base", justify="right")
    table.add_column("tuned", justify="right")
    table.add_column("change", justify="right")
    base = metrics.get("base", {})
    for key, label in (("perplexity", "perplexity (answers)"), ("rougeL", "ROUGE-L"), ("rouge1", "ROUGE-1"),
                       ("bleu", "BLEU"), ("mean_new_tokens", "answer tokens")):
        tuned_v, base_v = metrics["tuned"].get(key), base.get(key)
        if tuned_v is None:
            continue
        change = ""
        if base_v is not None and (key != "perplexity" or base_v > 0):
            change = f"{100 * (tuned_v / base_v - 1):+.1f}%" if key == "perplexity" else f"{tuned_v - base_v:+.2f}"
        table.add_row(label, f"{base_v:.2f}" if base_v is not None else "—", f"{tuned_v:.2f}", change)
    out.print(table)


def _print_run_files(run_dir) -> None:
    out.print(f"\n[bold]run folder[/] {run_dir.path}")
    for label, path in (("report", run_dir.report), ("metrics", run_dir.metrics), ("adapter", run_dir.adapter),
                        ("data", run_dir.data), ("config", run_dir.config_file)):
        out.print(f"  {label:8} {path}")


def main() -> None:
    """Entry point: user-fixable errors print one clear message and exit 2; bugs keep their traceback."""
    try:
        app()
    except R1TuneError as err:
        console.print(f"[bold red]error:[/] {err}")
        sys.exit(2)


if __name__ == "__main__":
    main()
