"""The self-describing run folder: `<runs_dir>/<run-id>/` holds everything one run used and produced.

    config.yaml          the resolved config (all defaults filled, paths absolute)
    run.json             run id, status, timings, model identity, library versions
    data/                train/val/test.jsonl, quarantine.jsonl, data_report.json (hashes, funnel)
    train/               adapter/ (PEFT) or model/ (full, freeze), train_metrics.jsonl, train_summary.json
    eval/                samples.jsonl (prompt, reference, base and tuned answers)
    metrics.json         base vs tuned metrics
    report.html          the human-readable summary
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from r1tune.artifacts import (
    DATA_REPORT_FILE,
    TRAIN_SUMMARY_FILE,
    DataReport,
    EvalMetrics,
    ResultKind,
    RunInfo,
    RunStatus,
    TrainSummary,
    read_artifact,
    write_artifact,
)
from r1tune.config import R1TuneConfig
from r1tune.configfile import dump_config, load_config
from r1tune.errors import R1TuneError


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def train(self) -> Path:
        return self.path / "train"

    @property
    def adapter(self) -> Path:
        return self.path / "train" / "adapter"

    @property
    def whole_model(self) -> Path:
        """Where `full` and `freeze` runs save their trained weights (a standalone safetensors model)."""
        return self.path / "train" / "model"

    def read_data_report(self) -> DataReport:
        """Written by the data stage (`data.prepare`), the file's one writer."""
        return read_artifact(self.data / DATA_REPORT_FILE, DataReport)

    @property
    def train_summary_file(self) -> Path:
        return self.path / "train" / TRAIN_SUMMARY_FILE

    def read_train_summary(self) -> TrainSummary:
        """Written by the training recipe (`train.recipe`), the file's one writer."""
        return read_artifact(self.train_summary_file, TrainSummary)

    @property
    def result_kind(self) -> ResultKind | None:
        """What this run's training produced, as recorded at train time; None before training. A folder
        with weights but no summary (made by hand or by another tool) is judged by which folder it has."""
        if self.train_summary_file.is_file():
            return self.read_train_summary().result_kind
        if self.adapter.is_dir():
            return "adapter"
        return "whole_model" if self.whole_model.is_dir() else None

    @property
    def trains_whole_model(self) -> bool:
        return self.result_kind == "whole_model"

    def trained_weights(self) -> dict[str, Path]:
        """How `r1tune.models.load` attaches this run's result: `{"adapter": ...}` or `{"weights_dir": ...}`."""
        return {"weights_dir": self.whole_model} if self.trains_whole_model else {"adapter": self.adapter}

    @property
    def eval(self) -> Path:
        return self.path / "eval"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    def read_metrics(self) -> EvalMetrics:
        return read_artifact(self.metrics, EvalMetrics)

    def write_metrics(self, metrics: EvalMetrics) -> Path:
        """The one writer of metrics.json (the eval stage, and `eval import` adding human ratings)."""
        return write_artifact(self.metrics, metrics)

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    def load_config(self) -> R1TuneConfig:
        return load_config(self.config_file)

    def info(self) -> RunInfo:
        """run.json, validated (its writers: `create_run`, `stage` and the stages' `update_info`)."""
        return read_artifact(self.path / "run.json", RunInfo)

    def read_info(self) -> dict[str, Any]:
        path = self.path / "run.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def update_info(self, **fields: Any) -> None:
        info = self.read_info()
        info.update(fields)
        (self.path / "run.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")

    @contextmanager
    def stage(self, name: str, finished_status: RunStatus) -> Iterator[None]:
        """Record a stage in run.json: `running` (with this process's id) while it runs, `finished_status`
        after it, `failed` with the error if it raises, so a run's status is never a stale `running`."""
        self.update_info(status="running", stage=name, pid=os.getpid(), host=socket.gethostname(), error=None)
        try:
            yield
        except BaseException as err:
            self.update_info(status="failed", error=f"{name}: {type(err).__name__}: {err}", finished=time.time())
            raise
        self.update_info(status=finished_status, finished=time.time(),
                         finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))

    def status(self) -> tuple[RunStatus, str | None]:
        """(status, error) as it really is: a `running` run whose process is gone on this machine (killed,
        out of memory, machine restarted) is `failed`."""
        info = self.read_info()
        status, error = info.get("status", "running"), info.get("error")
        if status == "running" and info.get("host") == socket.gethostname() and not _alive(info.get("pid")):
            return "failed", f"the process (pid {info.get('pid')}) ended during stage {info.get('stage', '?')}"
        return status, error


def create_run(cfg: R1TuneConfig) -> RunDir:
    """Make a fresh run folder named `<UTC timestamp>-<project name>` and record the resolved config."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = cfg.project.runs_dir / f"{stamp}-{_slug(cfg.project.name)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    run = RunDir(path)
    run.config_file.write_text(dump_config(cfg), encoding="utf-8")
    run.update_info(run_id=run.run_id, project=cfg.project.name, status="created", started=time.time(),
                    method=cfg.train.method, python=platform.python_version(), versions=_versions())
    return run


def open_run(path: str | Path) -> RunDir:
    """An existing run folder (or the newest run under a runs folder)."""
    path = Path(path)
    if (path / "config.yaml").is_file():
        return RunDir(path)
    runs = sorted(p for p in path.glob("*/config.yaml")) if path.is_dir() else []
    if runs:
        return RunDir(runs[-1].parent)
    raise R1TuneError(f"{path} is not a run folder (no config.yaml)", hint="pass runs/<run-id>")


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # unknown (an older run): trust what run.json says
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "run"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("r1tune", "torch", "transformers", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
