"""Run bookkeeping: every run's status is true (prepared, failed with its error, never a stale `running`),
and `r1tune runs` lists runs newest first with status, method, data size and headline metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.loop.runs import list_runs
from r1tune.rundir import RunDir


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def two_runs(tiny_llama_dir, tmp_path_factory) -> tuple[Path, RunDir, RunDir]:
    """One project's runs folder: a run only prepared, then a whole run logging to TensorBoard (made once:
    the tests below read different things from it)."""
    folder = tmp_path_factory.mktemp("runs_project")
    config = write_project(folder, tiny_llama_dir)
    assert _invoke("prepare", str(config)).exit_code == 0
    prepared = RunDir(next((folder / "runs").iterdir()))
    result = _invoke("run", str(config), "train.max_steps=2", "train.trackers=[tensorboard]", "eval.redteam=[]",
                     "--no-progress")
    assert result.exit_code == 0, result.output
    return config, prepared, RunDir(max((folder / "runs").iterdir()))


def test_statuses_are_true_and_runs_lists_them_newest_first(two_runs):
    config, prepared, done = two_runs
    assert prepared.status() == ("prepared", None)
    assert done.status() == ("done", None)

    (prepared.data / "train.jsonl").unlink()  # training this run must now fail, and say so
    assert _invoke("train", str(prepared.path), "--no-progress").exit_code != 0
    status, error = prepared.status()
    assert status == "failed" and error.startswith("train: ") and "train.jsonl" in error

    rows = list_runs(done.path.parent)
    assert [r.run_id for r in rows] == [done.run_id, prepared.run_id]
    assert rows[0].status == "done" and rows[0].method == "lora" and rows[0].train_records > 0
    assert rows[0].perplexity_change_pct is not None and rows[0].rougeL_delta is not None
    assert rows[0].verdict in ("better", "worse", "unclear") and rows[1].verdict is None
    listing = json.loads(_invoke("runs", str(config), "--json").output)
    assert [(r["run_id"], r["status"]) for r in listing] == [(done.run_id, "done"), (prepared.run_id, "failed")]
    assert _invoke("runs", str(done.path.parent)).exit_code == 0  # the table, from the runs folder itself


def test_a_run_whose_process_died_is_not_left_running(tmp_path):
    run = RunDir(tmp_path / "20260101-000000-x")
    run.path.mkdir()
    (run.path / "config.yaml").write_text("data: {sources: [{path: d.jsonl}]}\n")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with run.stage("train", "trained"):  # what a training process writes when it starts
        run.update_info(pid=child.pid)
        assert run.status() == ("running", None)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        status, error = run.status()
        assert status == "failed" and f"pid {child.pid}" in error and "stage train" in error
    assert json.loads((run.path / "run.json").read_text())["status"] == "trained"


def test_eval_metrics_reach_tensorboard_beside_the_loss(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = two_runs[2]
    events = EventAccumulator(str(run.train / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "train/loss" in tags and {"eval/base/rougeL", "eval/tuned/rougeL", "eval/tuned/perplexity"} <= tags
    tuned = events.Scalars("eval/tuned/perplexity")
    metrics = run.read_metrics()
    assert tuned[-1].step == 2 and abs(tuned[-1].value - metrics.tuned.perplexity) < 1e-3 * metrics.tuned.perplexity


def test_every_typed_artefact_loads_from_a_real_run(two_runs, tmp_path):
    from r1tune.artifacts import ExportProvenance, read_artifact

    run = two_runs[2]
    assert _invoke("export", str(run.path), "--out", str(tmp_path / "exported")).exit_code == 0
    info = run.info()
    assert info.status == "done" and info.method == "lora" and info.run_id == run.run_id
    report = run.read_data_report()
    assert report.funnel.train + report.funnel.val + report.funnel.test == report.funnel.usable > 0
    summary = run.read_train_summary()
    assert summary.result_kind == "adapter" == run.result_kind and summary.steps == 2
    metrics = run.read_metrics()
    assert metrics.base is not None and metrics.tuned.n == metrics.n_examples == report.funnel.test
    provenance = read_artifact(tmp_path / "exported" / "r1tune_export.json", ExportProvenance)
    assert (provenance.kind, provenance.chat_format, provenance.reasoning) == ("adapter", "chatml", "empty_think")
    assert provenance.source == str(run.path)
