"""`r1tune loop`: one idempotent improvement step for an adapter name, safe to run from a scheduler.

    lock → live version → feedback since it went live (too little: stop, say so) → candidate run: data
    (feedback as sources, held-out corrections as its test set, the live version's data replayed) → train
    from the live version → gate against it → register, then promote (swapped into a running server
    first) or reject, with the gate's reasons

The candidate run's `run.json` records the step reached (`loop.step`), so a loop killed at any point
(SIGKILL included) is continued by the next run of the command: training resumes from its newest
checkpoint, and the registry only changes in single transactions after the gate has decided. One loop per
adapter name runs at a time (an advisory file lock, released by the operating system if the process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from r1tune.artifacts import GateDecision, read_artifact
from r1tune.config import R1TuneConfig, SourceConfig
from r1tune.configfile import dump_config
from r1tune.errors import ConfigError, R1TuneError
from r1tune.loop.feedback import HELD_OUT_FILE, LoopFeedback, collect_feedback
from r1tune.loop.gate import GATE_FILE, run_gate
from r1tune.rundir import RunDir, create_run
from r1tune.serve.versions import VersionRegistry, VersionRow

log = logging.getLogger(__name__)


class LoopBusy(R1TuneError):
    """Another `r1tune loop` for the same adapter name is running."""


@dataclass
class LoopOutcome:
    action: Literal["nothing", "promoted", "rejected"]
    message: str
    live: str
    candidate: str | None = None
    decision: GateDecision | None = None
    feedback: LoopFeedback | None = None


def improve(cfg: R1TuneConfig, by: str, server: str | None = None, key_env: str = "R1TUNE_ADMIN_KEY",
            show_progress: bool = False) -> LoopOutcome:
    """Run (or continue) one improvement step for `loop.adapter`; see the module docstring."""
    from r1tune.serve import FeedbackStore, default_database_url

    name = _adapter_name(cfg)
    store = FeedbackStore(default_database_url(cfg))
    registry = VersionRegistry(store)
    with _exclusive(cfg.project.runs_dir, name):
        live = registry.live(name)
        if live is None:
            raise ConfigError(f"loop.adapter {name!r} has no live version",
                              hint=f"register and promote its first version: `r1tune versions register ... --name "
                                   f"{name}` then `r1tune versions promote`")
        run, feedback = _unfinished(cfg, live), None
        if run is None:
            run, feedback = _start(cfg, store, live)
            if run is None:
                return LoopOutcome("nothing", f"{feedback.usable} usable feedback item(s) on {name} since "
                                   f"{live.id} went live; loop.min_feedback is {cfg.loop.min_feedback}: nothing to do",
                                   live.id, feedback=feedback)
        return _finish(run, live, registry, by, server, key_env, show_progress, feedback)


def _finish(run: RunDir, live: VersionRow, registry: VersionRegistry, by: str, server: str | None, key_env: str,
            show_progress: bool, feedback: LoopFeedback | None) -> LoopOutcome:
    """Every step the candidate run has not reached yet, in order."""
    from r1tune.rundir import open_run

    cfg = run.load_config()
    if _step(run) == "collected":
        _prepare(cfg, run)
    if _step(run) == "prepared":
        _train(cfg, run, show_progress)
    if _step(run) == "trained":
        run_gate(cfg, run, open_run(live.run_path))
        _set_step(run, "gated")
    decision = read_artifact(run.path / "loop" / GATE_FILE, GateDecision)
    outcome = _conclude(run, live, registry, decision, by, server, key_env)
    outcome.feedback = feedback
    _write_history(run, registry, live.name)
    _set_step(run, "done")
    return outcome


def _write_history(run: RunDir, registry: VersionRegistry, name: str) -> None:
    """`loop/versions.json` (the name's versions, business numbers per version and week), then the report."""
    from r1tune.artifacts import VersionHistory, write_artifact
    from r1tune.eval import write_report
    from r1tune.serve.adapters import inspect_adapter
    from r1tune.serve.business import business_metrics

    versions = registry.list(name)
    by_weights = {}
    for version in versions:
        adapter = Path(version.run_path) / "train" / "adapter"
        if adapter.is_dir():
            by_weights[inspect_adapter(adapter)[1]] = version.id
    rows = [{**row, "version_id": by_weights.get(row["version"])} for row in
            business_metrics(registry.store.completions_with_feedback()) if row["model"] == name]
    fields = ("id", "parent", "status", "created", "changed_at", "changed_by", "reason")
    history = VersionHistory(name=name, business=rows,
                             versions=[{f: _plain(getattr(v, f)) for f in fields} for v in versions])
    write_artifact(run.path / "loop" / "versions.json", history)
    write_report(run)


def _plain(value):
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else value


def _start(cfg: R1TuneConfig, store, live: VersionRow) -> tuple[RunDir | None, LoopFeedback]:
    """A new candidate run with the feedback since `live` went live, or (None, counts) when there is too
    little (the folder is removed again: nothing happened)."""
    since = live.changed_at or live.created
    run = create_run(cfg)
    feedback = collect_feedback(store, cfg.loop, since, run.path / "loop" / "feedback", cfg.project.seed)
    if feedback.usable < cfg.loop.min_feedback:
        shutil.rmtree(run.path)
        return None, feedback
    run.config_file.write_text(dump_config(_candidate_config(cfg, live, feedback, run)), encoding="utf-8")
    run.update_info(loop={"name": cfg.loop.adapter, "parent": live.id, "since": str(since), "step": "collected",
                          "corrections": feedback.corrections, "pairs": feedback.pairs, "records": feedback.records,
                          "thumbs": feedback.thumbs, "heldout": feedback.heldout})
    return run, feedback


def _candidate_config(cfg: R1TuneConfig, live: VersionRow, feedback: LoopFeedback, run: RunDir) -> R1TuneConfig:
    """The project's config, trained on the feedback from the live version, tested on the held-out corrections."""
    loop, parent = cfg.loop, Path(live.run_path)
    held_out = run.path / "loop" / "feedback" / HELD_OUT_FILE
    data = cfg.data.model_copy(update={
        "sources": [SourceConfig.model_validate(s) for s in feedback.sources],
        "test_sources": [SourceConfig(path=held_out, format="messages")] if feedback.heldout else [],
        "test_ratio": 0.0, "max_records": None, "reasoning_traces": False,
        "split": cfg.data.split.model_copy(update={"min_per_class": None, "max_per_class": None}),  # no class balancing of feedback
        "replay_from": parent if loop.replay_share > 0 else None, "replay_share": loop.replay_share})
    whole = live.kind == "whole_model"  # a full/freeze version: its weights become the base to tune further
    train = cfg.train.model_copy(update={"init_from": None if whole else parent, "stage": loop.stage,
                                         "packing": cfg.train.packing and loop.stage == "sft"})
    model = cfg.model.model_copy(update={"name": str(parent / "train" / "model")}) if whole else cfg.model
    return cfg.model_copy(update={"data": data, "train": train, "model": model})


def _prepare(cfg: R1TuneConfig, run: RunDir) -> None:
    from r1tune import models
    from r1tune.data import prepare
    from r1tune.loop.pipeline import with_replay

    with run.stage("prepare", "prepared"):
        tokenizer = models.load(cfg.model, cfg.train.reasoning, with_weights=False).tokenizer
        prepare(cfg.data, run.data, cfg.project.seed, tokenizer=tokenizer)
        if cfg.data.replay_from is not None:
            with_replay(cfg, run)
    _set_step(run, "prepared")


def _train(cfg: R1TuneConfig, run: RunDir, show_progress: bool) -> None:
    from r1tune.loop.pipeline import train_stage
    from r1tune.train import checkpoint

    resume = bool(checkpoint.complete_checkpoints(run.train / "checkpoints"))
    with run.stage("train", "trained"):
        train_stage(cfg, run, show_progress=show_progress, resume=resume)
    _set_step(run, "trained")


def _conclude(run: RunDir, live: VersionRow, registry: VersionRegistry, decision: GateDecision, by: str,
              server: str | None, key_env: str) -> LoopOutcome:
    """Register the candidate (once), then promote it or reject it with the gate's reasons."""
    from r1tune.serve.versions import VersionError, swap_into_server

    name = live.name
    try:
        row = registry.get(run.run_id)
    except VersionError:
        row = registry.register(run, name, parent=live.id, metrics=_gate_metrics(decision))
    if row.status == "candidate" and not decision.passed:
        row = registry.reject(row.id, by, "gate: " + "; ".join(decision.reasons))
    elif row.status == "candidate":
        if server is not None:
            swap_into_server(server, key_env, name, str(run.path))
        row = registry.promote(row.id, by, f"gate passed against {live.id}")
    action = "promoted" if row.status == "live" else "rejected"
    message = (f"{row.id} is live for {name} (gate passed against {live.id})" if action == "promoted"
               else f"{row.id} rejected: {row.reason}")
    return LoopOutcome(action, message, live.id, row.id, decision)


def _gate_metrics(decision: GateDecision) -> dict[str, float]:
    """The registry's headline numbers for a loop version: each gate check's candidate value and change."""
    out: dict[str, float] = {}
    for check in decision.checks:
        for suffix, value in (("", check.candidate), ("_delta", check.delta)):
            if value is not None:
                out[f"{check.test_set}.{check.metric}{suffix}"] = value
    return out


def _unfinished(cfg: R1TuneConfig, live: VersionRow) -> RunDir | None:
    """The newest candidate run of `live` that a killed loop left after preparing its data and before its
    `done` step. One left before that (killed, or its data failed) is marked abandoned: the next candidate
    starts afresh under the project's current config, so a fixed config takes effect."""
    runs = sorted(cfg.project.runs_dir.glob("*/run.json"), reverse=True)
    for info_file in runs:
        run = RunDir(info_file.parent)
        state = run.read_info().get("loop") or {}
        if state.get("parent") != live.id or state.get("name") != live.name or state.get("step") in ("done", "abandoned"):
            continue
        if state.get("step") == "collected":  # nothing costly done yet: start again under the current config
            _set_step(run, "abandoned")
            continue
        log.warning("continuing the unfinished loop candidate %s from its step %r", run.run_id, state["step"])
        return run
    return None


def _step(run: RunDir) -> str:
    return (run.read_info().get("loop") or {}).get("step", "collected")


def _set_step(run: RunDir, step: str) -> None:
    run.update_info(loop={**(run.read_info().get("loop") or {}), "step": step})


def _adapter_name(cfg: R1TuneConfig) -> str:
    if not cfg.loop.adapter:
        raise ConfigError("loop.adapter is not set: the loop needs the served adapter name it improves",
                          hint="add `loop: {adapter: <name>}` (a name of serve.adapters) to the project file")
    return cfg.loop.adapter


@contextlib.contextmanager
def _exclusive(runs_dir: Path, name: str) -> Iterator[None]:
    """Hold `<runs_dir>/.loop-<name>.lock`; another holder makes this fail at once with LoopBusy."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / f".loop-{name}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LoopBusy(f"another `r1tune loop` for {name!r} is running (it holds {path})",
                           hint="wait for it to finish; a killed loop's lock is released by the system") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
