"""What a run folder holds, as types: one pydantic model per file that crosses a stage boundary.

Each file is written by exactly one function of `RunDir` and read only through `RunDir`, which validates on
read: a folder from an older or broken run fails with an `ArtifactError` naming the file and the field,
instead of a `KeyError` deep inside a report. Sections whose shape depends on the configuration (red-team,
judge and human-rating summaries, the metric families of `eval.metrics`) stay mappings inside their typed
parent; everything the stages exchange by name is a field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1tune.errors import R1TuneError

ResultKind = Literal["adapter", "whole_model"]  # what training produced: a PEFT adapter or whole weights
RunStatus = Literal["created", "running", "prepared", "trained", "done", "failed"]

Model = TypeVar("Model", bound=BaseModel)
TRAIN_SUMMARY_FILE = "train_summary.json"  # inside the run's train/ folder
DATA_REPORT_FILE = "data_report.json"  # inside the run's data/ folder


class ArtifactError(R1TuneError):
    """A run-folder file is missing, is not JSON, or does not fit its type."""


class _Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataFunnel(_Artifact):
    """How many records each step of `prepare` kept."""

    read: int
    rejected: dict[str, int]
    changed: dict[str, int]
    usable: int
    train: int
    val: int
    test: int
    held_out: int
    upsampled: int
    flagged: dict[str, int] = Field(default_factory=dict)  # kept as they are, worth a look (placeholders, ...)


class PiiSummary(_Artifact):
    enabled: bool
    strategy: str
    types: list[str] | None
    by_type: dict[str, int]
    records_masked: int


class DataReport(_Artifact):
    """`data/data_report.json`: what `prepare` read, dropped, changed, masked and wrote (see data/prepare.py
    for the meaning of each section)."""

    funnel: DataFunnel
    stages: list[dict[str, Any]]
    reasons: dict[str, dict[str, int]]
    histograms: dict[str, dict[str, list[float]]]
    languages: dict[str, int]
    pii: PiiSummary
    duplicates: dict[str, Any]
    split: dict[str, Any]
    quarantine_examples: list[str]
    sources: dict[str, dict[str, Any]]  # input file -> {records, sha256}
    splits: dict[str, str]  # split name -> sha256 of its file
    seed: int
    num_proc: int
    token_counter: Literal["tokenizer", "approx"]
    timings: dict[str, float]
    records_per_second: float | None
    warnings: list[str] = Field(default_factory=list)  # see data/data_warnings.py
    quality: dict[str, Any] | None = None  # the learned quality filter's summary (data/quality.py), when on
    annotation: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)  # Label Studio agreement


class TrainSummary(_Artifact):
    """`train/train_summary.json`: what one training run did and produced."""

    result_kind: ResultKind
    result_dir: Path  # the PEFT adapter folder, or the whole-model folder for `full` / `freeze`
    method: str
    steps: int
    epochs: float
    precision: str
    seconds: float
    trained_tokens: int  # answer tokens that took loss
    truncated: int
    dropped_empty: int
    val_loss: float | None  # of the saved weights
    packing: bool = False
    fill_rate: float = 1.0
    real_tokens: int = 0  # every non-pad token processed (prompts included)
    tokens_per_s: float = 0.0  # real tokens per second of optimiser-step compute
    step_seconds: float = 0.0  # time in optimiser steps (the rest: rendering, validation, checkpoints, saving)
    eval_seconds: float = 0.0  # time spent validating
    best_val_loss: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    resumed_from: int | None = None
    processes: int = 1
    stage: str = "sft"
    # dpo: share of training pairs whose chosen answer gained more log-probability than the rejected one
    preference_accuracy: float | None = None


class ConfidenceInterval(_Artifact):
    """A bootstrap interval of tuned minus base (see `eval.stats`)."""

    mean: float
    low: float
    high: float
    n: int
    paired: bool
    n_resamples: int
    alpha: float
    seed: int
    better: Literal["higher", "lower", "none"]


class ModelScores(BaseModel):
    """One model's scores on the test set. The fixed fields are always there; metric families that depend on
    the config (format validity, key terms, reasoning) arrive as extra fields, read with `value`."""

    model_config = ConfigDict(extra="allow")

    perplexity: float
    answer_nll: float
    answer_tokens: int
    rouge1: float
    rouge2: float
    rougeL: float
    bleu: float
    chrf: float
    exact_match: float
    token_f1: float
    n: int
    latency: dict[str, Any] = Field(default_factory=dict)

    def value(self, key: str) -> Any:
        """A metric by name, fixed or config-dependent; None when this run does not have it."""
        if key in type(self).model_fields:
            return getattr(self, key)
        return (self.model_extra or {}).get(key)


class SliceScores(_Artifact):
    """One slice of the test set (e.g. `label` = `card_lost`): its size and mean per-example metrics."""

    dimension: str  # label key, `language`, `source` or `length`
    value: str
    n: int
    tuned: dict[str, float]
    base: dict[str, float] = Field(default_factory=dict)
    delta: dict[str, float] = Field(default_factory=dict)  # tuned minus base


class EvalMetrics(_Artifact):
    """`metrics.json`: base vs tuned on the test set, their differences and intervals."""

    n_examples: int
    skipped: list[dict[str, str]] = Field(default_factory=list)  # test records without a reference
    headline_decoding: str
    decoding: dict[str, dict[str, Any]]
    batch_size: int
    tuned: ModelScores
    base: ModelScores | None = None
    delta: dict[str, float] = Field(default_factory=dict)
    ci: dict[str, ConfidenceInterval] = Field(default_factory=dict)
    by_decoding: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    slices: list[SliceScores] = Field(default_factory=list)  # worst first (see `eval.slices`)
    redteam: dict[str, Any] | None = None
    reasoning_probes: dict[str, Any] | None = None  # general-reasoning probes, base vs tuned (`eval.retention`)
    judge: dict[str, Any] | None = None
    human: dict[str, Any] | None = None

    def perplexity_change_pct(self) -> float | None:
        value = self.delta.get("perplexity_change_pct")
        return None if value is None or math.isnan(value) else value


class GateCheck(_Artifact):
    """One comparison of the improvement loop's gate: candidate minus live on one metric of one test set."""

    test_set: Literal["live_test", "heldout_corrections"]
    metric: str
    live: float | None
    candidate: float | None
    delta: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    passed: bool
    rule: str  # what the check asked, in words


class GateDecision(_Artifact):
    """`loop/gate.json`: the gate's verdict on a candidate version against the live one."""

    candidate: str
    live: str
    passed: bool
    reasons: list[str]  # why it failed (empty when it passed)
    checks: list[GateCheck]
    heldout_examples: int
    live_test_examples: int


class VersionHistory(_Artifact):
    """`loop/versions.json`: the adapter name's versions and the served answers' business numbers per version
    and week, as the registry and the feedback store held them when the loop concluded."""

    name: str
    versions: list[dict[str, Any]]  # id, parent, status, changed_at, reason, oldest first
    business: list[dict[str, Any]]  # rows of serve.business.business_metrics


class ExportProvenance(_Artifact):
    """`r1tune_export.json` in an exported model folder: enough to prompt it exactly as it was trained."""

    base_model: str  # the preset or model name the run tuned
    source: str  # the run folder it was exported from
    kind: ResultKind  # merged from an adapter, or copied whole weights
    chat_format: str  # the chat format's name (`deepseek-r1`, `chatml`, ...)
    reasoning: Literal["empty_think", "keep_prompt_think"]  # `train.reasoning` of the run
    train_on_prompt: bool = False
    r1tune_version: str = "unknown"


class RunInfo(BaseModel):
    """`run.json`: identity, status and timings of a run. Stages add facts as they learn them (model,
    precision, ...), so unknown keys are kept."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    project: str
    status: RunStatus
    started: float
    finished: float | None = None
    error: str | None = None
    method: str | None = None


def read_artifact(path: Path, model: type[Model]) -> Model:
    """Load and validate one run-folder file; every failure names the file (and the field)."""
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist", hint="was this stage of the run completed?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
        raise ArtifactError(f"{path}: field {field}: {first['msg']}{more}",
                            hint="the file comes from an older or broken run: re-run its stage") from None


def write_artifact(path: Path, artifact: BaseModel) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # python-mode dump: a NaN perplexity (no answer tokens) stays NaN instead of becoming null
    path.write_text(json.dumps(artifact.model_dump(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path
