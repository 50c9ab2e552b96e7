"""The improvement loop end to end on a tiny model: v1 is served, a scripted client asks, rates and corrects
through `/v1/feedback`, `r1tune loop` trains v2 from v1 (corrections as DPO pairs), its gate passes, the
running server answers with v2 without a restart, `versions rollback` brings v1 back, and the business
numbers count each version apart. A candidate trained on corrupted corrections is rejected with the gate's
reasons; too little feedback does nothing; two loops at once are refused."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers import PRODUCTS, product_records, write_messages_jsonl, write_project
from serve_helpers import make_adapter_run, running_server
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.configfile import load_config
from r1tune.rundir import open_run
from r1tune.serve import FeedbackStore, ServeTarget, build_runtime, default_database_url
from r1tune.serve.adapters import inspect_adapter
from r1tune.serve.business import business_metrics
from r1tune.serve.versions import VersionRegistry

FACT = "Returns are free within 30 days if you keep the receipt."
WRONG = "No returns: every sale is final, receipt or not."
ASKS = ["Can I return the {color} {name}?", "How do I send back my {name}?", "What is the return policy for a {name}?"]
QUICK = ["eval.reasoning_probes=0", "eval.max_new_tokens=16", "train.epochs=8", "train.lr=0.01"]


def _questions(n: int) -> list[str]:
    return [ASKS[i % len(ASKS)].format(color=PRODUCTS[i % 10][2], name=PRODUCTS[i % 10][0]) + f" (#{i})"
            for i in range(n)]


@pytest.fixture
def project(tiny_llama_dir, tmp_path):
    """v1 (a random adapter over product copy, with its own test split) registered and live for `shop`."""
    v1 = make_adapter_run(tmp_path / "versions", "v1", tiny_llama_dir, product_records(12), seed=1, rank=8,
                          targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    write_messages_jsonl(v1 / "data" / "test.jsonl", product_records(20)[12:])
    config = write_project(tmp_path, tiny_llama_dir, extra=(
        f"serve: {{adapters: [{{name: shop, path: '{v1}'}}], adapter_dirs: ['{tmp_path}']}}\n"
        "loop: {adapter: shop, min_feedback: 12}\n"))
    cfg = load_config(config)
    registry = VersionRegistry(FeedbackStore(default_database_url(cfg)))
    registry.register(open_run(v1), "shop")
    registry.promote("v1", "test", "first version")
    return config, registry


def _ask(url: str, question: str) -> dict:
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
        "model": "shop", "messages": [{"role": "user", "content": question}], "max_tokens": 6, "temperature": 0})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _feedback(url: str, completion_id: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/feedback", json={"completion_id": completion_id, **body}, timeout=30)


def _correct_all(url: str, questions: list[str], answer_for) -> None:
    for question in questions:
        reply = _ask(url, question)
        stored = _feedback(url, reply["id"], rating="down", corrected_answer=answer_for(question))
        assert stored.status_code == 200, stored.text


def _serve_and_correct(config) -> None:
    """Serve the project, have 16 answers corrected with FACT, stop the server."""
    runtime = build_runtime(ServeTarget(load_config(config)))
    runtime.start()
    try:
        with running_server(runtime) as url:
            _correct_all(url, _questions(16), lambda q: FACT)
    finally:
        runtime.close()


def _loop(config, *args):
    return CliRunner().invoke(app, ["loop", str(config), *QUICK, *args], catch_exceptions=False)


def test_loop_trains_gates_promotes_and_rolls_back(project):
    config, registry = project
    cfg = load_config(config)
    runtime = build_runtime(ServeTarget(cfg))
    runtime.start()
    try:
        with running_server(runtime) as url:
            _correct_all(url, _questions(16), lambda q: FACT)
            refused = [_feedback(url, "no-such-id", rating="up"),
                       _feedback(url, _ask(url, "Hello?")["id"], corrected_answer="  ")]
            served = _ask(url, "Is shipping free?")
            refused.append(_feedback(url, served["id"], corrected_answer=served["choices"][0]["message"]["content"]))
            assert [r.status_code for r in refused] == [404, 400, 400]
            assert "identical to the served answer" in refused[2].text

            result = _loop(config, "--server", url)
            assert result.exit_code == 0, result.output
            assert "is live for shop" in result.output, result.output
            v2 = registry.live("shop")
            assert v2.id != "v1" and v2.parent == "v1" and registry.get("v1").status == "retired"
            run = open_run(v2.run_path)
            gate = json.loads((run.path / "loop" / "gate.json").read_text())
            assert gate["passed"] and gate["heldout_examples"] >= 1  # near-copies of trained ones are dropped as leaks
            heldout = next(c for c in gate["checks"] if c["test_set"] == "heldout_corrections")
            assert heldout["live"] == 0 and heldout["delta"] > 0  # corrections never trained: their fact stated
            summary = json.loads((run.train / "train_summary.json").read_text())
            assert summary["stage"] == "dpo" and summary["preference_accuracy"] > 0.5
            history = json.loads((run.path / "loop" / "versions.json").read_text())
            assert [(v["id"], v["status"]) for v in history["versions"]] == [("v1", "retired"), (v2.id, "live")]
            assert {r["version_id"] for r in history["business"]} == {"v1"}  # v2 has answered nothing yet
            report = run.report.read_text()
            assert "Improvement loop" in report and "Gate passed" in report and "data:image/svg+xml" in report

            v2_weights = inspect_adapter(run.adapter)[1]
            answered = _ask(url, "Can I return my scarf?")
            store = FeedbackStore(default_database_url(cfg))
            version_of = {c.id: c.adapter_version for c, _ in store.completions_with_feedback()}
            assert version_of[answered["id"]] == v2_weights  # the running server answers with v2
            assert _feedback(url, answered["id"], rating="up").status_code == 200

            back = CliRunner().invoke(app, ["versions", "rollback", str(config), "shop", "--server", url])
            assert back.exit_code == 0, back.output
            again = _ask(url, "Can I return my scarf?")
            version_of = {c.id: c.adapter_version for c, _ in store.completions_with_feedback()}
            v1_weights = inspect_adapter(open_run(registry.get("v1").run_path).adapter)[1]
            assert version_of[again["id"]] == v1_weights
            assert registry.live("shop").id == "v1"

            by_version = {row["version"]: row for row in business_metrics(store.completions_with_feedback())}
            assert by_version[v2_weights]["volume"] == 1 and by_version[v2_weights]["acceptance_rate"] == 1.0
            assert by_version[v1_weights]["corrections"] == 16
            assert CliRunner().invoke(app, ["feedback", "stats", str(config)]).exit_code == 0
            assert _loop(config).output.count("nothing to do") == 1  # v1 live again: no new feedback since
    finally:
        runtime.close()


def test_a_candidate_trained_on_corrupted_corrections_is_rejected(project, monkeypatch):
    """The staff's corrections are right, but a data fault swaps the training copies for a contradicting
    answer (never the held-out ones): the candidate learns it, and the gate sees that on the corrections it
    never trained on."""
    import r1tune.loop.improve as improve_module

    config, registry = project
    _serve_and_correct(config)
    collect = improve_module.collect_feedback

    def corrupted(*args):
        found = collect(*args)
        pairs = args[3] / "pairs.jsonl"
        rows = [json.loads(line) for line in pairs.read_text().splitlines()]
        for row in rows:
            row["chosen"][0]["content"] = WRONG
        pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return found

    monkeypatch.setattr(improve_module, "collect_feedback", corrupted)
    result = _loop(config)
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "FAIL heldout_corrections key_fact_recall" in result.output, result.output
    rows = {v.id: v for v in registry.list("shop")}
    candidate = next(v for v in rows.values() if v.id != "v1")
    assert candidate.status == "rejected" and rows["v1"].status == "live"
    assert candidate.reason.startswith("gate: heldout_corrections: key_fact_recall: must get higher")


def test_too_little_feedback_does_nothing_and_leaves_no_run(project):
    config, registry = project
    runs_before = set(load_config(config).project.runs_dir.glob("*/run.json"))
    result = _loop(config)
    assert result.exit_code == 0 and "nothing to do" in result.output
    assert set(load_config(config).project.runs_dir.glob("*/run.json")) == runs_before
    assert [v.id for v in registry.list("shop")] == ["v1"]


def test_two_loops_at_once_are_refused(project):
    from r1tune.loop.improve import LoopBusy, _exclusive

    config, _ = project
    runs_dir = load_config(config).project.runs_dir
    with _exclusive(runs_dir, "shop"), pytest.raises(LoopBusy, match="another `r1tune loop` for 'shop' is running"):
        _loop(config)


def test_the_loop_needs_an_adapter_name_and_a_live_version(project):
    from r1tune.errors import ConfigError

    config, registry = project
    with pytest.raises(ConfigError, match="loop.adapter is not set"):
        _loop(config, "loop.adapter=null")
    with pytest.raises(ConfigError, match="loop.adapter 'clinic' has no live version"):
        _loop(config, "loop.adapter=clinic")


def test_a_loop_killed_while_training_leaves_the_registry_alone_and_a_rerun_finishes(project):
    import os
    import signal
    import subprocess
    import sys
    import time

    from r1tune.train.checkpoint import complete_checkpoints

    config, registry = project
    _serve_and_correct(config)
    slow = [*QUICK, "train.max_steps=30", "train.save_every=3"]  # killed at step 3, long before step 30
    child = subprocess.Popen([sys.executable, "-m", "r1tune", "loop", str(config), *slow],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": "src"})
    runs_dir = load_config(config).project.runs_dir
    deadline = time.monotonic() + 300
    while not any(complete_checkpoints(p) for p in runs_dir.glob("*/train/checkpoints")):
        assert child.poll() is None and time.monotonic() < deadline, "the loop ended before its first checkpoint"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert [(v.id, v.status) for v in registry.list("shop")] == [("v1", "live")]  # nothing half-registered

    result = CliRunner().invoke(app, ["loop", str(config), *slow], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    candidate = next(v for v in registry.list("shop") if v.id != "v1")
    assert candidate.status in ("live", "rejected")
    summary = json.loads((open_run(candidate.run_path).train / "train_summary.json").read_text())
    assert summary["resumed_from"] is not None and summary["steps"] > summary["resumed_from"]
    assert len(list(runs_dir.glob("*/run.json"))) == 1  # continued, not started again


def test_a_candidate_whose_data_failed_is_abandoned_and_the_next_loop_starts_afresh(project, monkeypatch):
    import r1tune.loop.improve as improve_module
    from r1tune.errors import DataError

    config, registry = project
    _serve_and_correct(config)

    def broken(cfg, run):
        raise DataError("simulated: a data source could not be read")

    with monkeypatch.context() as patched:
        patched.setattr(improve_module, "_prepare", broken)
        with pytest.raises(DataError, match="simulated"):
            _loop(config)
    result = _loop(config)
    assert result.exit_code == 0, result.output
    steps = sorted(json.loads(p.read_text())["loop"]["step"]
                   for p in load_config(config).project.runs_dir.glob("*/run.json"))
    assert steps == ["abandoned", "done"]
    assert len(registry.list("shop")) == 2
