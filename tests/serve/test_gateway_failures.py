"""A gateway (`serve.engine: openai`) whose upstream fails: each way of failing reaches the client as its own
answer (503 with Retry-After while the upstream is down, dropped or overloaded; the upstream's reason when it
refuses a request; no upstream internals when it crashes), and `/health` answers 503 while the upstream does
not answer or the vLLM child is down. The upstream is a small OpenAI-shaped app on 127.0.0.1 whose
behaviour each test sets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from serve_helpers import build_project_runtime, running_server, wait_until

from r1tune.serve import upstream as upstream_module
from r1tune.serve.server import free_port, serving_in_thread
from r1tune.serve.supervised import SupervisedServer

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
SECRET = "/srv/internal/cuda-kernels.py"
FAKE_VLLM = Path(__file__).with_name("fake_vllm.py")


def fake_upstream(state: dict) -> FastAPI:
    """/v1/models and a streaming /v1/completions that answers as `state["mode"]` says."""
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"data": [{"id": "base"}]}

    @app.post("/v1/completions")
    def completions():
        mode = state["mode"]
        if mode == "refuse":
            return JSONResponse({"error": {"message": "maximum context length is 8 tokens"}}, status_code=400)
        if mode == "overloaded":
            return JSONResponse({"error": {"message": "no free KV cache blocks"}}, status_code=503)
        if mode == "crash":
            return JSONResponse({"error": {"message": f"device-side assert in {SECRET}"}}, status_code=500)
        return StreamingResponse(_events(drop=mode == "drop"), media_type="text/event-stream")

    return app


def _events(drop: bool):
    yield "data: " + json.dumps({"choices": [{"index": 0, "text": "On its way", "finish_reason": None}]}) + "\n\n"
    if drop:
        raise RuntimeError("the upstream died mid-answer")  # uvicorn breaks the connection off
    yield "data: " + json.dumps({"choices": [{"index": 0, "text": ".", "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 9, "completion_tokens": 2}}) + "\n\n"
    yield "data: [DONE]\n\n"


@contextlib.contextmanager
def gateway_over(state: dict, tiny_llama_dir, folder):
    """(gateway URL, gateway runtime, a function that stops the upstream now rather than at the end)."""
    with contextlib.ExitStack() as upstream, contextlib.ExitStack() as gateway:
        up_url = upstream.enter_context(serving_in_thread(fake_upstream(state)))
        runtime = build_project_runtime(folder, tiny_llama_dir, f"serve: {{engine: openai, upstream_url: '{up_url}/v1'}}")
        runtime.start()
        gateway.callback(runtime.close)
        url = gateway.enter_context(running_server(runtime))
        yield url, runtime, upstream.close


@pytest.fixture
def upstream_state():
    return {"mode": "ok"}


@pytest.fixture
def gateway(upstream_state, tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(upstream_module, "HEALTH_PROBE_S", 0.0)  # every /health asks the upstream
    with gateway_over(upstream_state, tiny_llama_dir, tmp_path) as served:
        yield served


def _chat(url: str, model: str = "base", **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=60,
                      json={"model": model, "messages": MESSAGES, "max_tokens": 8, **extra})


def _stream_events(url: str, model: str) -> list:
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=60,
                      json={"model": model, "messages": MESSAGES, "max_tokens": 8, "stream": True}) as reply:
        assert reply.status_code == 200
        return [line[5:].strip() for line in reply.iter_lines() if line.startswith("data:")]


def test_a_healthy_upstream_answers_through_the_gateway(gateway):
    url, runtime, _ = gateway
    reply = _chat(url, runtime.base_id)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "On its way."
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_an_overloaded_upstream_is_a_503_to_retry(gateway, upstream_state):
    url, runtime, _ = gateway
    upstream_state["mode"] = "overloaded"
    reply = _chat(url, runtime.base_id)
    assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
    assert reply.json()["error"]["code"] == "upstream_unavailable"


def test_a_refused_request_carries_the_upstreams_reason(gateway, upstream_state):
    url, runtime, _ = gateway
    upstream_state["mode"] = "refuse"
    reply = _chat(url, runtime.base_id)
    assert reply.status_code == 500 and reply.json()["error"]["code"] == "generation_failed"
    assert "refused the request (400): maximum context length is 8 tokens" in reply.json()["error"]["message"]


def test_an_upstream_crash_tells_the_client_nothing_of_its_internals(gateway, upstream_state, caplog):
    url, runtime, _ = gateway
    upstream_state["mode"] = "crash"
    reply = _chat(url, runtime.base_id)
    assert reply.status_code == 500 and SECRET not in reply.text
    assert any(SECRET in record.getMessage() for record in caplog.records)  # the operator still sees it


def test_a_stream_the_upstream_drops_ends_with_an_error_event(gateway, upstream_state):
    url, runtime, _ = gateway
    upstream_state["mode"] = "drop"
    events = _stream_events(url, runtime.base_id)
    chunks = [json.loads(e) for e in events[:-2]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert "On its way".startswith(text) and events[-1] == "[DONE]"  # the server may hold back a tail
    assert not any(c["choices"][0].get("finish_reason") for c in chunks if c.get("choices"))
    assert json.loads(events[-2])["error"]["code"] == "upstream_unavailable"


def test_a_stopped_upstream_makes_requests_and_health_503(gateway):
    url, runtime, stop_upstream = gateway
    assert httpx.get(f"{url}/health").status_code == 200
    stop_upstream()
    reply = _chat(url, runtime.base_id)
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "upstream_unavailable"
    assert "127.0.0.1" not in reply.text  # the upstream's address stays in the log
    raw = httpx.post(f"{url}/v1/completions", timeout=60, json={"model": runtime.base_id, "prompt": [1, 2]})
    assert raw.status_code == 503 and raw.json()["error"]["code"] == "upstream_unavailable"
    health = httpx.get(f"{url}/health")
    assert health.status_code == 503 and health.json() == {
        **health.json(), "status": "unavailable", "reason": "the model server behind this gateway does not answer"}


def test_health_is_503_while_the_vllm_child_is_down(gateway):
    """The vLLM child's supervisor (serve/supervised.py) wired as serve/gateway.py wires it; a child that is
    left down (here: no restarts allowed) keeps /health at 503 with the reason."""
    url, runtime, _ = gateway
    port = free_port()
    child = SupervisedServer([sys.executable, str(FAKE_VLLM), str(port)], f"http://127.0.0.1:{port}",
                             max_restarts=0, first_delay_s=0.05)
    child.start()
    runtime.engine.child_problem = child.problem
    try:
        assert httpx.get(f"{url}/health").status_code == 200
        os.kill(child.pid, signal.SIGKILL)
        wait_until(lambda: child.problem() is not None)
        health = httpx.get(f"{url}/health")
        assert health.status_code == 503 and health.json()["reason"] == (
            "the vLLM server this gateway started has exited (code -9) and is left down: it exited 1 time "
            "within 10 minutes")
    finally:
        child.stop()


def test_requests_while_the_vllm_child_restarts_are_503s_to_retry(gateway):
    """Between its restart and its adapters being loaded again, vLLM would answer an adapter's request with a
    404; the gateway answers 503 to retry until the supervisor says the child is back."""
    url, runtime, _ = gateway
    runtime.engine.child_problem = lambda: "the vLLM server this gateway started has exited (code -9); restarting it"
    reply = _chat(url, runtime.base_id)
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "upstream_unavailable"
    assert reply.headers["retry-after"] == "5"
    runtime.engine.child_problem = lambda: None
    assert _chat(url, runtime.base_id).status_code == 200


def test_health_probes_the_upstream_at_most_every_few_seconds(upstream_state, tiny_llama_dir, tmp_path):
    """Without the test's override: a stopped upstream shows in /health only after HEALTH_PROBE_S, and a
    flood of health checks does not become a flood of upstream calls."""
    with gateway_over(upstream_state, tiny_llama_dir, tmp_path) as (url, runtime, stop_upstream):
        calls = []
        ask = runtime.engine.upstream_models
        runtime.engine.upstream_models = lambda timeout=10: calls.append(timeout) or ask(timeout)
        runtime.engine._health = (0.0, None)  # due now
        assert [httpx.get(f"{url}/health").status_code for _ in range(5)] == [200] * 5
        assert calls == [2]
        stop_upstream()
        assert httpx.get(f"{url}/health").status_code == 200  # the last answer holds until it is due again


def test_an_upstream_that_is_not_openai_shaped_is_unhealthy_not_a_crash():
    """A /v1/models that answers something else (here a bare list) is a named problem, not a 500."""
    from r1tune.serve.upstream import UpstreamEngine

    app = FastAPI()
    app.get("/v1/models")(lambda: ["base"])
    with serving_in_thread(app) as url:
        engine = UpstreamEngine(f"{url}/v1", "base", [0])
        assert engine.problem() == "the model server behind this gateway does not answer"
