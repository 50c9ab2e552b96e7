"""`r1tune serve RUN` as a real process: acknowledged feedback survives SIGKILL; `r1tune feedback export`
turns it into training data; `--new-api-key` writes only a hash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from helpers import write_project
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.data.records import read_jsonl
from r1tune.errors import R1TuneError

runner = CliRunner()
USER = [{"role": "user", "content": "Describe the blue mug #3."}]


def _serve(run, runs_dir, port, database_url: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    store = [f"serve.database_url={database_url}"] if database_url else []
    return subprocess.Popen(
        [sys.executable, "-m", "r1tune", "serve", str(run), f"project.runs_dir={runs_dir}", "serve.threads=1",
         *store, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _wait_for_health(url: str, proc: subprocess.Popen, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            response = httpx.get(url + "/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("server did not become healthy")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_feedback_survives_sigkill_and_exports(backend, adapter_runs, tmp_path, tcp_port, request):
    # SQLite at its default place (<runs_dir>/feedback.db), or PostgreSQL through serve.database_url
    database_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    url = f"http://127.0.0.1:{tcp_port}"
    proc = _serve(adapter_runs["shop"], tmp_path, tcp_port, database_url)
    try:
        health = _wait_for_health(url, proc)
        assert "tiny" in health["models"]  # the run's adapter, named after its project
        ids = []
        for i in range(2):
            completion = httpx.post(url + "/v1/chat/completions", timeout=60,
                                    json={"model": "tiny", "messages": USER, "max_tokens": 4 + i}).json()
            ids.append(completion["id"])
        acks = [
            httpx.post(url + "/v1/feedback", json=body, timeout=30)
            for body in ({"completion_id": ids[0], "rating": "down", "corrected_answer": "A blue mug, 350 ml."},
                         {"completion_id": ids[1], "rating": 5}, {"completion_id": ids[0], "tags": ["x"],
                                                                  "rating": 1, "corrected_answer": "A blue mug."})
        ]
        assert [a.status_code for a in acks] == [200, 200, 200]
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown hook runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    if database_url is None:
        assert (tmp_path / "feedback.db").is_file()
        database_url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = create_engine(database_url)
    with store.connect() as conn:  # a new connection, after the server died without closing anything
        assert conn.execute(text("SELECT count(*) FROM completions")).scalar() == 2
        ratings = conn.execute(text("SELECT rating FROM feedback ORDER BY id")).all()
    store.dispose()
    assert [tuple(r) for r in ratings] == [("down",), ("5",), ("1",)]

    out = tmp_path / "export"
    result = runner.invoke(app, ["feedback", "export", str(adapter_runs["shop"]), "--out", str(out),
                                 "--database-url", database_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sft = list(read_jsonl(out / "sft.jsonl"))
    assert [r.answer.content for r in sft] == ["A blue mug."]  # the latest feedback of a completion counts
    assert sft[0].messages[0].content == USER[0]["content"]
    assert "preference pairs" in result.output


def test_new_api_key_writes_only_its_hash(tiny_llama_dir, tmp_path):
    config = write_project(tmp_path, tiny_llama_dir, extra="serve: {api_keys_file: keys.txt}\n")
    result = runner.invoke(app, ["serve", str(config), "--new-api-key", "ci-bot", "--admin"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    stored = (tmp_path / "keys.txt").read_text()
    assert key.startswith("r1t-") and key not in stored and stored.startswith("ci-bot admin sha256:")


def test_serve_refuses_an_unreachable_database_before_loading_the_model(adapter_runs, tcp_port, monkeypatch):
    import r1tune.models

    def no_model_load(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the database was checked")

    monkeypatch.setattr(r1tune.models, "load", no_model_load)
    database = f"postgresql+psycopg://shop:s3cret@127.0.0.1:{tcp_port}/feedback"  # nothing listens there
    result = runner.invoke(app, ["serve", str(adapter_runs["shop"]), f"serve.database_url={database}"])
    message = str(result.exception)
    assert isinstance(result.exception, R1TuneError)  # printed as one line by `main`, exit code 2
    assert "cannot connect to the feedback database" in message and "s3cret" not in message
