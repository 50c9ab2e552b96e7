"""The single schema of a project's `r1tune.yaml`.

Every option is declared once, here, with its description; `r1tune config schema` prints the JSON Schema,
`r1tune config show` the resolved values, and the README's config reference is generated from it.
Unknown keys are rejected, and an error names the YAML path, its line, the bad value and what is allowed.
Each pipeline stage receives only its own section (`cfg.data`, `cfg.train`, ...), never the whole tree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from r1tune.errors import ConfigError

CONFIG_FILENAME = "r1tune.yaml"


def _resolve_against_config_dir(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in a project file mean 'relative to that file', wherever r1tune is started from."""
    base = (info.context or {}).get("base_dir")
    value = Path(os.path.expanduser(str(value)))
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


ProjectPath = Annotated[Path, AfterValidator(_resolve_against_config_dir)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectConfig(_Section):
    name: str = Field("r1tune-project", min_length=1, description="Project name; used in run ids and reports.")
    runs_dir: ProjectPath = Field(
        Path("runs"), validate_default=True, description="Folder where every run writes `<runs_dir>/<run-id>/` (relative to this file)."
    )
    seed: int = Field(42, description="Seed for data splits, initialisation and sampling.")


class SourceConfig(_Section):
    path: ProjectPath = Field(description="Data file (relative to this file).")
    format: Literal["auto", "messages", "alpaca", "csv"] = Field(
        "auto",
        description=(
            "Record shape. `messages`: JSONL with OpenAI-style `messages` (an assistant turn may carry "
            "`reasoning`); `alpaca`: JSON/JSONL with instruction/input/output; `csv`: a CSV/TSV table turned "
            "into prompts by `prompt_template`. `auto` picks by file suffix and the first record's keys."
        ),
    )
    prompt_template: str | None = Field(
        None,
        description=(
            "Jinja template that turns one table row into the user prompt, e.g. "
            "`Write a description for {{name}} ({{material}}, {{price}} yuan)`. Required for `csv`."
        ),
    )
    target_column: str | None = Field(None, description="Column holding the expected answer (for `csv`).")
    system: str | None = Field(None, description="System prompt added to every record from this source.")


class DataConfig(_Section):
    sources: list[SourceConfig] = Field(min_length=1, description="Training data files; read in order.")
    test_sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Held-out test files. When given, the test split comes from these and `test_ratio` is ignored.",
    )
    val_ratio: float = Field(0.1, ge=0.0, lt=0.5, description="Share of records held out for validation.")
    test_ratio: float = Field(0.1, ge=0.0, lt=0.5, description="Share of records held out for testing.")
    max_records: int | None = Field(None, gt=0, description="Read at most this many records (for quick trials).")


class ModelConfig(_Section):
    name: str = Field(
        "smollm2-135m-instruct",
        min_length=1,
        description=(
            "A preset name (`r1tune models` lists them), a local folder with safetensors weights, "
            "or a Hugging Face hub id."
        ),
    )
    chat_format: Literal["auto", "deepseek-r1", "chatml", "llama3"] = Field(
        "auto", description="Conversation format; `auto` takes the preset's, else detects it from the tokenizer."
    )
    trust_remote_code: bool = Field(
        False, description="Allow a hub model to run its own Python code. Off unless you trust the repo."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to load.")


class TrainConfig(_Section):
    method: Literal["lora"] = Field("lora", description="Tuning method.")
    lora_rank: int = Field(16, gt=0, description="LoRA rank r.")
    lora_alpha: int = Field(32, gt=0, description="LoRA scaling numerator (the update is scaled by alpha/r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | None = Field(
        None, description="Module names that get adapters; default: the preset's (all linear layers)."
    )
    lr: float = Field(2e-4, gt=0.0, description="Peak learning rate (AdamW).")
    epochs: float = Field(2.0, gt=0.0, description="Passes over the training split.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimiser steps (overrides epochs).")
    batch_size: int = Field(8, gt=0, description="Sequences per micro-batch.")
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimiser step.")
    max_seq_len: int = Field(512, ge=16, description="Longer records are truncated; the count is reported.")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="Share of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    train_on_prompt: bool = Field(False, description="Also take loss on prompt tokens (default: answers only).")
    reasoning: Literal["empty_think", "keep_prompt_think"] = Field(
        "empty_think",
        description=(
            "DeepSeek-R1 records without reasoning: `empty_think` trains an empty `<think>` block so the model "
            "keeps closing its think tag; `keep_prompt_think` puts it in the (untrained) prompt."
        ),
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="`auto` uses bf16 autocast where the CPU/GPU supports it, else fp32."
    )
    log_every: int = Field(5, gt=0, description="Log loss and throughput every N optimiser steps.")


class EvalConfig(_Section):
    max_new_tokens: int = Field(128, gt=0, description="Generation limit per test prompt.")
    batch_size: int = Field(8, gt=0, description="Prompts generated together.")
    max_examples: int | None = Field(None, gt=0, description="Evaluate at most this many test records.")
    compare_base: bool = Field(True, description="Also score the base model on the same prompts.")


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Bind address (loopback by default).")
    port: int = Field(8000, gt=0, lt=65536, description="TCP port.")


class R1TuneConfig(_Section):
    """A whole project: one section per pipeline stage."""

    project: ProjectConfig = Field(default_factory=dict, validate_default=True, description="Naming, output folder, seed.")
    data: DataConfig = Field(description="Where the data comes from and how it is split.")
    model: ModelConfig = Field(default_factory=dict, validate_default=True, description="Which model to tune.")
    train: TrainConfig = Field(default_factory=dict, validate_default=True, description="How to tune it.")
    eval: EvalConfig = Field(default_factory=dict, validate_default=True, description="How to measure base and tuned models.")
    serve: ServeConfig = Field(default_factory=dict, validate_default=True, description="How to serve the tuned model.")


# ---------------------------------------------------------------------------------------------------------
# Loading, overrides and readable errors


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> R1TuneConfig:
    """Read, override and validate a project file; raise ConfigError naming file, line, key and value."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", hint="create one with `r1tune init DIR`")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    apply_overrides(data, overrides)
    return validate_config(data, base_dir=path.parent.resolve(), source=str(path), lines=_yaml_key_lines(text))


def validate_config(
    data: dict[str, Any], base_dir: Path, source: str = "<config>", lines: dict[tuple, int] | None = None
) -> R1TuneConfig:
    """Validate a config mapping; relative paths are resolved against `base_dir`."""
    try:
        return R1TuneConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        raise ConfigError(_describe_errors(err, source, lines or {})) from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply `section.key=value` overrides in place; values are parsed as YAML (`1e-4`, `true`, `[a, b]`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value", hint="e.g. train.lr=1e-4")
        parts = key.strip().split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = node.setdefault(part, {})
        value = yaml.safe_load(raw) if raw.strip() else ""
        # YAML 1.1 reads `1e-4` as a string; the schema's float fields accept numeric strings anyway.
        if isinstance(node, list) and parts[-1].isdigit():
            node[int(parts[-1])] = value
        elif isinstance(node, dict):
            node[parts[-1]] = value
        else:
            raise ConfigError(f"override {item!r}: {'.'.join(parts[:-1])} is not a section")


def _describe_errors(err: ValidationError, source: str, lines: dict[tuple, int]) -> str:
    out = [f"{source}: {err.error_count()} problem(s) in the config"]
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        line = _nearest_line(loc, lines)
        at = f" (line {line})" if line else ""
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            out.append(f"  {where}{at}: unknown key; allowed here: {allowed}")
        elif e["type"] == "missing":
            out.append(f"  {where}{at}: required field is missing")
        else:
            out.append(f"  {where}{at}: got {e.get('input')!r}: {e['msg']}")
    return "\n".join(out)


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = R1TuneConfig
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return sorted(model.model_fields)


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _yaml_key_lines(text: str) -> dict[tuple, int]:
    """Map each YAML key path (as a tuple) to its 1-based line, so errors can point at the line."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[tuple, int] = {}

    def walk(node: yaml.Node | None, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return found


def dump_config(cfg: R1TuneConfig) -> str:
    """The resolved config as YAML (paths absolute), as saved in every run folder."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def config_reference_markdown() -> str:
    """A Markdown table per section, generated from the field descriptions (used for the README)."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def emit(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            inner = getattr(annotation, "__args__", (annotation,))
            nested = [a for a in inner if isinstance(a, type) and issubclass(a, _Section)]
            key = f"{prefix}{name}"
            if nested and name not in ("sources", "test_sources"):
                emit(nested[0], key + ".")
                continue
            if nested:  # a list of sources: document the item fields
                rows.append(f"| `{key}` | list | {_default_text(field)} | {field.description} |")
                emit(nested[0], key + "[].")
                continue
            rows.append(f"| `{key}` | {_type_text(annotation)} | {_default_text(field)} | {field.description} |")

    emit(R1TuneConfig, "")
    return "\n".join(rows) + "\n"


def _type_text(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "").replace("<class '", "").replace("'>", "")
    return text.replace("Annotated[Path, AfterValidator(func=_resolve_against_config_dir)]", "path").replace("|", "\\|")


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "—"
    return f"`{value}`" if value not in (None, []) else ("`[]`" if value == [] else "—")
