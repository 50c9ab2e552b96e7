"""The version registry: register, promote (the live one retires), reject, refuse to promote a rejected
version without force, roll back to the previous live version, diff two versions' configs; through the
Python API and the `r1tune versions` commands, on SQLite and (when the test database is up) PostgreSQL."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.rundir import open_run
from r1tune.serve.store import FeedbackStore
from r1tune.serve.versions import VersionError, VersionRegistry


def _run(root, run_id: str, lr: float):
    run = root / "runs" / run_id
    (run / "train" / "adapter").mkdir(parents=True)
    (run / "data").mkdir()
    (run / "config.yaml").write_text(f"project: {{name: shop}}\ndata: {{sources: [{{path: d.jsonl}}]}}\ntrain: {{lr: {lr}}}\n")
    (run / "run.json").write_text(json.dumps({"status": "done", "result": "adapter"}))
    (run / "train" / "adapter" / "adapter_config.json").write_text("{}")
    (run / "data" / "train.jsonl").write_text(f'{{"lr": {lr}}}\n')
    return open_run(run)


def test_promote_reject_rollback_and_diff(tmp_path, store_url):
    registry = VersionRegistry(FeedbackStore(store_url))
    v1 = registry.register(_run(tmp_path, "run-1", 0.001), "shop")
    v2 = registry.register(_run(tmp_path, "run-2", 0.0005), "shop", parent=v1.id)
    assert (v1.status, v2.parent, v2.kind) == ("candidate", "run-1", "adapter")
    registry.promote("run-1", "ana", "first release")
    promoted = registry.promote("run-2", "ana", "better key facts")
    assert promoted.status == "live" and registry.get("run-1").status == "retired"
    assert registry.live("shop").id == "run-2"
    back = registry.rollback("shop", "ben", "customers complained")
    assert back.id == "run-1" and back.status == "live" and back.changed_by == "ben"
    assert registry.get("run-2").status == "retired" and "customers complained" in registry.get("run-2").reason
    change = registry.diff("run-1", "run-2")
    assert "-train: {lr: 0.001}" in change["config"] and "+train: {lr: 0.0005}" in change["config"]
    assert change["same_data"] is False


def test_what_cannot_be_done_is_refused_and_changes_nothing(tmp_path):
    registry = VersionRegistry(FeedbackStore(f"sqlite:///{tmp_path / 'r.db'}"))
    registry.register(_run(tmp_path, "run-1", 0.001), "shop")
    with pytest.raises(VersionError, match="already registered"):
        registry.register(_run(tmp_path / "again", "run-1", 0.001), "shop")
    with pytest.raises(VersionError, match="parent version nope is not registered"):
        registry.register(_run(tmp_path, "run-2", 0.002), "shop", parent="nope")
    registry.reject("run-1", "ana", "invented facts")
    with pytest.raises(VersionError, match="was rejected \\(invented facts\\); promote it with --force"):
        registry.promote("run-1", "ana", "try")
    assert registry.get("run-1").status == "rejected"
    assert registry.promote("run-1", "ana", "accepted risk", force=True).status == "live"
    with pytest.raises(VersionError, match="no live version with a retired one before it"):
        registry.rollback("shop", "ana", "oops")
    with pytest.raises(VersionError, match="no version 'ghost'"):
        registry.get("ghost")


def test_versions_commands(tmp_path):
    run1, run2 = _run(tmp_path, "run-1", 0.001), _run(tmp_path, "run-2", 0.002)
    project = tmp_path / "r1tune.yaml"
    project.write_text("project: {name: shop}\ndata: {sources: [{path: d.jsonl}]}\n")
    (tmp_path / "d.jsonl").write_text("")
    runner = CliRunner()

    def call(*args):
        result = runner.invoke(app, ["versions", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    call("register", str(project), str(run1.path), "--name", "shop")
    call("register", str(project), str(run2.path), "--name", "shop", "--parent", "run-1")
    call("promote", str(project), "run-1")
    assert "run-2 is live for shop" in call("promote", str(project), "run-2", "--reason", "gate passed")
    assert "run-1 is live again" in call("rollback", str(project), "shop")
    assert "+train: {lr: 0.002}" in call("diff", str(project), "run-1", "run-2")
    assert '"status": "retired"' in call("show", str(project), "run-2")
    assert (tmp_path / "runs" / "feedback.db").is_file()  # the project's own database
