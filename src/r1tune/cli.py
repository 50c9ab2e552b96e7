"""The `r1tune` command: a thin layer over the stage APIs. Heavy libraries load inside commands only,
so `r1tune --help` is instant."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from r1tune.cli_feedback import feedback_app
from r1tune.cli_labels import labels_app
from r1tune.cli_loop import loop_cmd
from r1tune.cli_ship import deploy_app, export
from r1tune.cli_teacher import synth, synth_accept, traces
from r1tune.cli_versions import versions_app
from r1tune.errors import R1TuneError

if TYPE_CHECKING:
    from r1tune.artifacts import EvalMetrics

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
    if not verbose:  # torchao (the int8 extra) warns at import about CUDA kernels a CPU machine cannot load
        logging.getLogger("torchao").setLevel(logging.ERROR)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False) -> None:
    _setup_logging(verbose)
    if not verbose:  # r1tune draws its own progress bars; the libraries' per-file bars are noise here
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        warnings.filterwarnings("ignore", category=FutureWarning)


def _load(config: Path, overrides: list[str] | None):
    from r1tune.configfile import load_config

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
        progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
        gpus: GpusOpt = None, strategy: StrategyOpt = "ddp", nodes: NodesOpt = 1, node_rank: NodeRankOpt = 0,
        main_address: MainAddressOpt = None) -> None:
    """Run the whole pipeline: prepare → train → eval → report (training launched on `--gpus` like
    `r1tune train`; prepare and eval run in this process)."""
    from r1tune.loop import run_pipeline

    cfg = _load(config, overrides)
    launch = _launch(gpus, strategy, nodes, node_rank, main_address)
    def on_stage(name: str, run_dir) -> None:
        if name == "train":  # prepare has finished: its warnings before hours of training
            _print_data_warnings(run_dir.read_data_report())
        console.print(f"[bold cyan]▶ {name}[/]  ({run_dir.path})")

    result = run_pipeline(cfg, show_progress=progress, on_stage=on_stage, launch=launch)
    _print_comparison(result.metrics)
    _print_run_files(result.run)


@app.command("prepare")
def prepare_cmd(config: ConfigArg, overrides: OverridesArg = None,
                progress: Annotated[bool, typer.Option(help="Show progress bars.")] = False) -> None:
    """Read, clean, deduplicate, mask and split the data into a new run folder (no model weights needed)."""
    from r1tune.data import prepare
    from r1tune.loop.pipeline import base_answer_scorer
    from r1tune.rundir import create_run

    cfg = _load(config, overrides)
    run_dir = create_run(cfg)
    with run_dir.stage("prepare", "prepared"):
        prepare(cfg.data, run_dir.data, cfg.project.seed, tokenizer=_tokenizer_or_none(cfg),
                show_progress=progress, answer_scorer=base_answer_scorer(cfg))
    report = run_dir.read_data_report()
    funnel = report.funnel
    rejected = ", ".join(f"{stage} {n}" for stage, n in funnel.rejected.items()) or "none"
    changed = ", ".join(f"{stage} {n}" for stage, n in funnel.changed.items()) or "none"
    out.print(f"read {funnel.read} · rejected: {rejected} · changed: {changed} · usable {funnel.usable} → "
              f"train {funnel.train} / val {funnel.val} / test {funnel.test}")
    _print_data_warnings(report)
    pii = report.pii.by_type
    if pii:
        out.print("masked PII: " + ", ".join(f"{t} {n}" for t, n in sorted(pii.items())))
    out.print(f"prepared data in {run_dir.data} (every dropped or changed row: quarantine.jsonl)")


def _tokenizer_or_none(cfg):
    """The model's tokenizer sizes document chunks and token histograms; without it an estimate is used."""
    from r1tune import models

    try:
        return models.load(cfg.model, cfg.train.reasoning, with_weights=False).tokenizer
    except R1TuneError as err:
        console.print(f"[yellow]note:[/] no tokenizer ({err.message}); token counts are estimates")
        return None


@app.command("mask")
def mask_cmd(
    in_path: Annotated[Path, typer.Option("--in", help="Text or JSONL file to mask.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the masked copy.")],
    strategy: Annotated[str, typer.Option(help="placeholder, pseudonym or hash.")] = "placeholder",
    fields: Annotated[str | None, typer.Option(help="JSONL fields to mask, comma-separated "
                                                     "(default: messages, else every string field).")] = None,
    types: Annotated[str | None, typer.Option(help="PII types, comma-separated (default: all).")] = None,
    salt_env: Annotated[str, typer.Option(help="Environment variable holding the secret salt.")] = "R1TUNE_PII_SALT",
) -> None:
    """Mask personal data (IDs, phones, cards, emails, names, addresses...) in a text or JSONL file."""
    from r1tune.data.pii import PII_TYPES, PiiMasker, mask_file

    if not in_path.is_file():
        raise R1TuneError(f"input file not found: {in_path}")
    if in_path.resolve() == out_path.resolve():
        raise R1TuneError("--out must differ from --in", hint="write the masked copy next to the original")
    type_list = [t.strip().upper() for t in types.split(",") if t.strip()] if types else None
    unknown = sorted(set(type_list or []) - set(PII_TYPES))
    if unknown:
        raise R1TuneError(f"unknown PII type(s) {unknown}", hint=f"choose from {', '.join(PII_TYPES)}")
    masker = PiiMasker(strategy, os.environ.get(salt_env, ""), type_list)  # type: ignore[arg-type]
    field_list = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    summary = mask_file(in_path, out_path, masker, field_list)
    found = ", ".join(f"{t} {n}" for t, n in sorted(summary["by_type"].items())) or "nothing"
    out.print(f"{summary['lines']} lines · masked {summary['masked']} ({found}) → {out_path}")


GpusOpt = Annotated[int | None, typer.Option(help="Train on N CUDA GPUs per machine with accelerate (writes its config).")]
StrategyOpt = Annotated[str, typer.Option(help="With --gpus: ddp, fsdp, zero2 or zero3 (DeepSpeed).")]
NodesOpt = Annotated[int, typer.Option(help="With --gpus: machines in the job (run the command on each).")]
NodeRankOpt = Annotated[int, typer.Option(help="With --nodes: this machine's rank, 0 on the main machine.")]
MainAddressOpt = Annotated[str | None, typer.Option(help="With --nodes: the rank-0 machine's address.")]


def _launch(gpus: int | None, strategy: str, nodes: int, node_rank: int, main_address: str | None):
    from r1tune.train import Launch

    if gpus is None:
        if nodes != 1:
            raise R1TuneError("--nodes needs --gpus (GPUs per machine)")
        return None
    return Launch(gpus, strategy, nodes, node_rank, main_address)  # type: ignore[arg-type]


def _launch_training(cfg, run_dir, launch, resume: bool) -> None:
    from r1tune.train import launch_on_gpus

    code = launch_on_gpus(cfg.train, run_dir.path, launch, resume)
    if code:
        raise R1TuneError(f"the launched training exited with code {code}",
                          hint=f"fix the error above, then `r1tune train {run_dir.path} --resume`")


@app.command("train")
def train_cmd(
    run_folder: RunArg,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    resume: Annotated[bool, typer.Option(help="Continue from the run's newest checkpoint (after a crash).")] = False,
    gpus: GpusOpt = None, strategy: StrategyOpt = "ddp", nodes: NodesOpt = 1, node_rank: NodeRankOpt = 0,
    main_address: MainAddressOpt = None,
) -> None:
    """Train on a run folder's prepared data (from `r1tune prepare`), or resume it after a crash."""
    from r1tune.loop import train_stage
    from r1tune.rundir import open_run
    from r1tune.train import is_launched_worker, is_main_process

    run_dir = open_run(run_folder)
    cfg = run_dir.load_config()
    launch = _launch(gpus, strategy, nodes, node_rank, main_address)
    if launch is not None and not is_launched_worker():
        _launch_training(cfg, run_dir, launch, resume)
    else:
        with run_dir.stage("train", "trained") if is_main_process() else contextlib.nullcontext():
            train_stage(cfg, run_dir, show_progress=progress, resume=resume)
    if is_main_process():
        out.print(f"trained: {run_dir.train}")


class _EvalGroup(TyperGroup):
    """`r1tune eval RUN` means `r1tune eval run RUN`; `sheet` and `import` are the other subcommands."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(cls=_EvalGroup, no_args_is_help=True, rich_markup_mode="markdown",
                       help="Evaluate a run (`r1tune eval RUN`), or export/import human-evaluation sheets.")
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_cmd(run_folder: RunArg, progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True) -> None:
    """Evaluate a run's adapter against the base model on its test split, and rewrite the report."""
    from r1tune.eval import write_report
    from r1tune.loop import eval_stage
    from r1tune.rundir import open_run

    run_dir = open_run(run_folder)
    with run_dir.stage("eval", "done"):
        metrics = eval_stage(run_dir.load_config(), run_dir, show_progress=progress)
        write_report(run_dir)
    _print_comparison(metrics)
    out.print(f"report: {run_dir.report}")


@eval_app.command("sheet")
def eval_sheet(
    run_folder: RunArg,
    n: Annotated[int | None, typer.Option("-n", help="Items to rate (default: every test example).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling, order and A/B assignment.")] = 0,
) -> None:
    """Export a blind, shuffled A/B rating sheet (CSV + XLSX) of base vs tuned answers."""
    from r1tune.eval.human import export_sheets
    from r1tune.rundir import open_run

    paths = export_sheets(open_run(run_folder), n, seed)
    out.print(f"sheets: {paths['csv']} and {paths['xlsx']} (give one copy to each rater)")
    out.print(f"key:    {paths['key']} (which answer is which; keep it from the raters)")


@eval_app.command("import")
def eval_import(
    run_folder: RunArg,
    sheets: Annotated[list[Path], typer.Argument(help="Filled sheets (.csv or .xlsx), one per rater.")],
) -> None:
    """Import filled rating sheets: means with 95% CIs, Cohen's/Fleiss' kappa; updates metrics and report."""
    from r1tune.cli_tables import human_table
    from r1tune.eval import write_report
    from r1tune.eval.human import import_sheets
    from r1tune.rundir import open_run

    run_dir = open_run(run_folder)
    out.print(human_table(import_sheets(run_dir, sheets)))
    out.print(f"report: {write_report(run_dir)}")


@app.command("runs")
def runs_cmd(
    project: Annotated[Path, typer.Argument(help="A project file or folder, or a runs folder.")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """List a project's runs, newest first: status, method, data size and base-vs-tuned headline."""
    import dataclasses

    from r1tune.cli_tables import runs_table
    from r1tune.loop.runs import list_runs, runs_folder

    rows = list_runs(runs_folder(project))
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], default=str, indent=2))
        return
    out.print(runs_table(rows) if rows else "no runs yet")


@app.command()
def report(run_folder: RunArg) -> None:
    """(Re)write report.html of a run from its files."""
    from r1tune.eval import write_report
    from r1tune.rundir import open_run

    out.print(f"report: {write_report(open_run(run_folder))}")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="First run folder.")],
    run_b: Annotated[Path, typer.Argument(help="Second run folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Put two runs side by side: config differences and tuned (and base) metrics."""
    from r1tune.cli_tables import compare_output
    from r1tune.eval.compare import compare_runs
    from r1tune.rundir import open_run

    result = compare_runs(open_run(run_a), open_run(run_b))
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return
    for part in compare_output(result):
        out.print(part)


@app.command("show-sample")
def show_sample(
    target: Annotated[Path, typer.Argument(help="A project file (its first records, cleaned and masked as "
                                                  "`prepare` does) or a run folder (its prepared train split).")],
    n: Annotated[int, typer.Option("-n", help="How many records to show.")] = 2,
    overrides: OverridesArg = None,
) -> None:
    """Print records as training sees them (after cleaning, PII masking and chunking), rendered by the
    model's chat format, with the trained tokens highlighted (the mask viewer)."""
    from rich.text import Text

    from r1tune import models
    from r1tune.rundir import RunDir

    run = RunDir(target) if (target / "config.yaml").is_file() else None
    cfg = run.load_config() if run else _load(target, overrides)
    loaded = models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, with_weights=False,
                         mask_history=cfg.train.mask_history)
    records, origin = _training_records(cfg, run, target, n, loaded.tokenizer)
    # Colour where the terminal shows it; elsewhere (logs, pipes) trained spans are bracketed ⟦like this⟧.
    markers = not out.is_terminal
    legend = "⟦trained⟧ · not trained" if markers else "[bold green on grey15]trained[/] · [dim]not trained[/]"
    out.print(f"{origin} · format [bold]{loaded.renderer.fmt.name}[/] · {legend}\n")
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


def _training_records(cfg, run, target: Path, n: int, tokenizer) -> tuple[list, str]:
    """(the first `n` records as training sees them, where they came from): a run's prepared train split,
    or a project's first records cleaned and masked with the model's tokenizer sizing chunks."""
    from itertools import islice

    from r1tune.data import read_jsonl

    if run is not None:
        train = run.data / "train.jsonl"
        if not train.is_file():
            raise R1TuneError(f"{run.path} has no prepared data ({train} is missing)",
                              hint="run `r1tune prepare` first, or pass the project file")
        return list(islice(read_jsonl(train), n)), f"run {run.run_id}, prepared train split"
    from r1tune.data.chunking import tokenizer_counter
    from r1tune.data.preview import training_view

    records, dropped = training_view(cfg.data, n, tokenizer_counter(tokenizer))
    note = f", {len(dropped)} record(s) dropped on the way" if dropped else ""
    return records, f"first records of {target}, cleaned and masked{note}"


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
    from r1tune.rundir import RunDir

    if (target / "config.yaml").is_file():
        run_dir = RunDir(target)
        cfg = run_dir.load_config()
        trained = {} if base else run_dir.trained_weights()
    else:
        cfg = _load(target, [])
        trained = {}
    plan = models.inference_plan(cfg.train.precision, cfg.model)
    return models.load(cfg.model, cfg.train.reasoning, plan=plan, **trained), plan.compute


def _answer(loaded, precision, messages, max_new_tokens, temperature):
    from r1tune.models.generation import generate as run_generate

    sampling = loaded.sampling
    temp = sampling["temperature"] if temperature is None else temperature
    prompt = loaded.renderer.render_prompt(messages)
    return run_generate(loaded.model, loaded.renderer, [prompt], max_new_tokens, temperature=temp,
                        top_p=sampling["top_p"], precision=precision)[0]


app.command()(export)
app.command()(traces)
app.command("synth")(synth)
app.command("synth-accept")(synth_accept)


@app.command("serve")
def serve_cmd(
    target: Annotated[Path, typer.Argument(help="A run folder (base + its adapter) or a project file.")],
    overrides: OverridesArg = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: serve.port, 8000).")] = None,
    new_api_key: Annotated[str | None, typer.Option(
        help="Instead of serving: create a key with this name, store its hash in serve.api_keys_file, print it.")] = None,
    admin: Annotated[bool, typer.Option(help="With --new-api-key: the key may load/unload adapters.")] = False,
) -> None:
    """Serve the model over an OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`, `/v1/feedback`)."""
    from r1tune.serve import add_key, prepare_target, run_server

    served = prepare_target(target, host, port, overrides or [])
    if new_api_key is not None:
        keys_file = served.cfg.serve.api_keys_file
        if keys_file is None:
            raise R1TuneError("serve.api_keys_file is not set", hint="set it in the project file, e.g. keys.txt")
        key = add_key(keys_file, new_api_key, "admin" if admin else "user")
        console.print(f"added key {new_api_key!r} to {keys_file}; it is shown only once:")
        print(key)
        return
    run_server(served, announce=console.print)


app.add_typer(labels_app, name="labels")
app.add_typer(deploy_app, name="deploy")
app.add_typer(versions_app, name="versions")
app.add_typer(feedback_app, name="feedback")
app.command("loop")(loop_cmd)


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
    from r1tune.configfile import dump_config

    print(dump_config(_load(config, overrides)), end="")


@config_app.command("docs")
def config_docs() -> None:
    """Print the config reference as Markdown (the README's reference section)."""
    from r1tune.configdocs import config_reference_markdown

    print(config_reference_markdown(), end="")


def _print_data_warnings(report) -> None:
    for warning in report.warnings:
        console.print(f"[bold yellow]data warning:[/] {escape(warning)}", highlight=False)


def _print_comparison(metrics: EvalMetrics) -> None:
    from r1tune.cli_tables import comparison_table, verdict_line

    out.print(comparison_table(metrics))
    if line := verdict_line(metrics):
        out.print(line)


def _print_run_files(run_dir) -> None:
    out.print(f"\n[bold]run folder[/] {run_dir.path}")
    result = ("model", run_dir.whole_model) if run_dir.trains_whole_model else ("adapter", run_dir.adapter)
    for label, path in (("report", run_dir.report), ("metrics", run_dir.metrics), result,
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
