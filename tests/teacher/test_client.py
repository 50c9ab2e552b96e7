"""The teacher client against a stub OpenAI-compatible teacher on 127.0.0.1: retries with backoff on
injected 429/500, a cache hit on re-run (zero new requests), the request budget (a stop that keeps every
answer, and a re-run that continues), a wrong key, an unreachable teacher and a malformed answer."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from r1tune.config.teacher import TeacherConfig
from r1tune.serve.server import serving_in_thread
from r1tune.teacher import TeacherBudgetExhausted, TeacherClient, TeacherError

KEY = "teacher-key-0123456789"


def _stub() -> FastAPI:
    app = FastAPI()
    app.state.fail, app.state.calls, app.state.malformed = [], 0, False

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        app.state.calls += 1
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": "bad key"}, status_code=401)
        if app.state.fail:
            return JSONResponse({"error": "busy"}, status_code=app.state.fail.pop(0))
        body = await request.json()
        if app.state.malformed:
            return JSONResponse({"nothing": True})
        question = body["messages"][-1]["content"]
        return {"choices": [{"index": i, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"answer {i} to {question}",
                                         "reasoning_content": f"thinking about {question}"}}
                            for i in range(body["n"])],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20}}

    return app


@pytest.fixture
def teacher(monkeypatch):
    monkeypatch.setenv("R1TUNE_TEACHER_API_KEY", KEY)
    app = _stub()
    with serving_in_thread(app) as url:
        yield app, f"{url}/v1"


def _client(url: str, tmp_path, **settings) -> TeacherClient:
    return TeacherClient(TeacherConfig(base_url=url, model="teacher", **settings), tmp_path / "cache")


CONVERSATIONS = [[{"role": "user", "content": q}] for q in ("q1", "q2", "q3")]


def test_retries_429_and_500_with_backoff(teacher, tmp_path, monkeypatch):
    app, url = teacher
    waits = []
    monkeypatch.setattr("r1tune.teacher.client.time.sleep", waits.append)
    app.state.fail = [429, 500]
    client = _client(url, tmp_path, max_retries=3)
    [replies] = client.ask_many(CONVERSATIONS[:1], n=2)
    assert [r.content for r in replies] == ["answer 0 to q1", "answer 1 to q1"]
    assert replies[0].reasoning == "thinking about q1" and not replies[0].cached
    assert app.state.calls == 3 and client.ledger.retries == 2 and waits == [0.5, 1.0]
    assert (client.ledger.prompt_tokens, client.ledger.completion_tokens) == (10, 20)


def test_a_rerun_is_answered_from_the_cache(teacher, tmp_path):
    app, url = teacher
    first = _client(url, tmp_path).ask_many(CONVERSATIONS)
    calls = app.state.calls
    again = _client(url, tmp_path)
    second = again.ask_many(CONVERSATIONS)
    assert app.state.calls == calls == 3 and again.ledger.requests == 0 and again.ledger.cache_hits == 3
    assert [r[0].content for r in second] == [r[0].content for r in first] and second[0][0].cached


def test_the_budget_stops_the_job_and_a_rerun_continues(teacher, tmp_path):
    app, url = teacher
    client = _client(url, tmp_path, max_requests=2, max_concurrency=1)
    with pytest.raises(TeacherBudgetExhausted, match="budget of 2 requests is spent"):
        client.ask_many(CONVERSATIONS)
    assert app.state.calls == 2
    rerun = _client(url, tmp_path, max_requests=1, max_concurrency=1).ask_many(CONVERSATIONS)
    assert app.state.calls == 3 and [r[0].content for r in rerun] == [f"answer 0 to q{i}" for i in (1, 2, 3)]
    with pytest.raises(TeacherBudgetExhausted):
        _client(url, tmp_path / "empty", max_requests=0).ask_many(CONVERSATIONS[:1])


def test_a_wrong_key_stops_at_once(teacher, tmp_path, monkeypatch):
    app, url = teacher
    monkeypatch.setenv("R1TUNE_TEACHER_API_KEY", "wrong")
    with pytest.raises(TeacherError, match=r"refused the API key \(HTTP 401\)"):
        _client(url, tmp_path).ask_many(CONVERSATIONS[:1])
    assert app.state.calls == 1


def test_an_unreachable_teacher_and_a_malformed_answer_are_named(teacher, tmp_path, monkeypatch):
    app, url = teacher
    monkeypatch.setattr("r1tune.teacher.client.time.sleep", lambda s: None)
    with pytest.raises(TeacherError, match="http://127.0.0.1:9/v1/chat/completions failed 2 times"):
        _client("http://127.0.0.1:9/v1", tmp_path, max_retries=1).ask_many(CONVERSATIONS[:1])
    app.state.malformed = True
    with pytest.raises(TeacherError, match="not a chat completion"):
        _client(url, tmp_path).ask_many(CONVERSATIONS[:1])
    with pytest.raises(TeacherError, match="no teacher is configured"):
        TeacherClient(TeacherConfig(), tmp_path)
