"""A corpus of malformed and unsupported request bodies, each with the status and error code it must get:
no 5xx, and no parameter silently ignored with a 200. After the corpus the server still answers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest

from r1tune.serve.protocol import UNSUPPORTED_PARAMETERS

USER = [{"role": "user", "content": "Describe the blue mug."}]
OK = (200, None)


def chat(**fields):
    return {"model": "MODEL", "messages": USER, **fields}


# (name, endpoint, body: dict | str | bytes, (status, error code))
CORPUS: list[tuple[str, str, object, tuple[int, str | None]]] = [
    ("empty body", "chat", b"", (400, "missing_body")),
    ("whitespace body", "chat", b"  \n", (400, "missing_body")),
    ("not json", "chat", b"{model: x}", (400, "invalid_json")),
    ("truncated json", "chat", b'{"model": "x", "messages": [', (400, "invalid_json")),
    ("invalid utf-8", "chat", b'{"model": "\xff\xfe"}', (400, "invalid_json")),
    ("json array", "chat", b"[1, 2]", (400, "invalid_value")),
    ("json string", "chat", b'"hello"', (400, "invalid_value")),
    ("json null", "chat", b"null", (400, "invalid_value")),
    ("no model", "chat", {"messages": USER}, (400, "invalid_value")),
    ("no messages", "chat", {"model": "MODEL"}, (400, "invalid_value")),
    ("empty messages", "chat", chat(messages=[]), (400, "invalid_value")),
    ("messages not a list", "chat", chat(messages="hi"), (400, "invalid_value")),
    ("message not an object", "chat", chat(messages=["hi"]), (400, "invalid_value")),
    ("unknown role", "chat", chat(messages=[{"role": "wizard", "content": "x"}]), (400, "invalid_value")),
    ("tool role without tool_call_id", "chat", chat(messages=[{"role": "tool", "content": "x"}]),
     (400, "invalid_value")),
    ("tool_call_id on a user turn", "chat", chat(messages=[{"role": "user", "content": "x", "tool_call_id": "1"}]),
     (400, "invalid_value")),
    ("content a number", "chat", chat(messages=[{"role": "user", "content": 5}]), (400, "invalid_value")),
    ("image part", "chat", chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
     (400, "invalid_value")),
    ("unknown message field", "chat", chat(messages=[{"role": "user", "content": "x", "mood": "happy"}]),
     (400, "unknown_parameter")),
    ("assistant tool_calls", "chat", chat(messages=[{"role": "user", "content": "a"},
                                                    {"role": "assistant", "content": None,
                                                     "tool_calls": [{"id": "1"}]},
                                                    {"role": "user", "content": "b"}]), (400, "invalid_value")),
    ("tool call arguments not JSON", "chat", chat(messages=[
        {"role": "user", "content": "a"},
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function",
                                              "function": {"name": "f", "arguments": "{oops"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "r"}]), (400, "invalid_value")),
    ("last message assistant", "chat", chat(messages=[{"role": "user", "content": "a"},
                                                      {"role": "assistant", "content": "b"}]), (400, "invalid_value")),
    ("only system", "chat", chat(messages=[{"role": "system", "content": "a"}]), (400, "invalid_value")),
    ("empty user message", "chat", chat(messages=[{"role": "user", "content": "   "}]), (400, "invalid_value")),
    ("unknown model", "chat", chat(model="gpt-9"), (404, "model_not_found")),
    ("empty model", "chat", chat(model=""), (400, "invalid_value")),
    ("model a number", "chat", chat(model=7), (400, "invalid_value")),
    ("temperature string", "chat", chat(temperature="0.5"), (400, "invalid_value")),
    ("temperature too high", "chat", chat(temperature=3), (400, "invalid_value")),
    ("temperature negative", "chat", chat(temperature=-0.1), (400, "invalid_value")),
    ("temperature bool", "chat", chat(temperature=True), (400, "invalid_value")),
    ("top_p zero", "chat", chat(top_p=0), (400, "invalid_value")),
    ("top_p above one", "chat", chat(top_p=1.5), (400, "invalid_value")),
    ("max_tokens string", "chat", chat(max_tokens="2"), (400, "invalid_value")),
    ("max_tokens bool", "chat", chat(max_tokens=True), (400, "invalid_value")),
    ("max_tokens float", "chat", chat(max_tokens=2.0), (400, "invalid_value")),
    ("max_tokens zero", "chat", chat(max_tokens=0), (400, "invalid_value")),
    ("max_tokens above limit", "chat", chat(max_tokens=100_000), (400, "max_tokens_too_large")),
    ("max_completion_tokens negative", "chat", chat(max_completion_tokens=-1), (400, "invalid_value")),
    ("stream string", "chat", chat(stream="yes"), (400, "invalid_value")),
    ("stream number", "chat", chat(stream=1), (400, "invalid_value")),
    ("stream_options unknown field", "chat", chat(stream=True, stream_options={"include_usage": True, "x": 1}),
     (400, "unknown_parameter")),
    ("stop too many", "chat", chat(stop=["a", "b", "c", "d", "e"]), (400, "invalid_value")),
    ("stop a number", "chat", chat(stop=5), (400, "invalid_value")),
    ("seed too large", "chat", chat(seed=2**64), (400, "invalid_value")),
    ("seed too small", "chat", chat(seed=-(2**63) - 1), (400, "invalid_value")),
    ("seed string", "chat", chat(seed="7"), (400, "invalid_value")),
    ("n two", "chat", chat(n=2), (400, "invalid_value")),
    ("user too long", "chat", chat(user="u" * 300), (400, "invalid_value")),
    ("unknown top-level field", "chat", chat(top_k=5), (400, "unknown_parameter")),
    ("vendor field", "chat", chat(repetition_penalty=1.1), (400, "unknown_parameter")),
    ("frequency_penalty out of range", "chat", chat(frequency_penalty=3), (400, "invalid_value")),
    ("presence_penalty string", "chat", chat(presence_penalty="1"), (400, "invalid_value")),
    ("logit_bias word key", "chat", chat(logit_bias={"hello": 5}), (400, "invalid_value")),
    ("logit_bias out of range", "chat", chat(logit_bias={"5": 101}), (400, "invalid_value")),
    ("logit_bias token beyond vocabulary", "chat", chat(logit_bias={"999999999": 1}), (400, "invalid_value")),
    ("logit_bias not an object", "chat", chat(logit_bias=[1, 2]), (400, "invalid_value")),
    ("NUL in content", "chat", chat(messages=[{"role": "user", "content": "a\x00b"}]), (400, "invalid_value")),
    ("NUL in model", "chat", chat(model="x\x00"), (400, "invalid_value")),
    *[(f"unsupported {name}", "chat", chat(**{name: value}), (400, "unsupported_parameter")) for name, value in [
        ("functions", [{"name": "f"}]),
        ("logprobs", True),  # refused while the server masks PII in answers (the default)
        ("reasoning_effort", "low"),
        ("modalities", ["text", "audio"]),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("prediction", {"type": "content", "content": "x"}),
        ("store", True),
        ("metadata", {"k": "v"}),
        ("service_tier", "flex"),
        ("web_search_options", {}),
    ]],
    ("logprobs not a boolean", "chat", chat(logprobs=1), (400, "invalid_value")),
    ("top_logprobs without logprobs", "chat", chat(top_logprobs=3), (400, "invalid_value")),
    ("top_logprobs above 20", "chat", chat(logprobs=True, top_logprobs=21), (400, "invalid_value")),
    # values that ask for nothing are accepted, so clients that always send them keep working
    *[(f"neutral {name}", "chat", chat(**{name: value}), OK) for name, value in [
        ("response_format", {"type": "text"}), ("tools", []), ("logprobs", False), ("store", False),
        ("modalities", ["text"]), ("tool_choice", "none"), ("service_tier", "auto"),
    ]],
    ("well-formed", "chat", chat(), OK),
    ("tools", "chat", chat(tools=[{"type": "function", "function": {"name": "f"}}]), OK),
    ("tool result turn", "chat", chat(messages=[{"role": "user", "content": "a"}, {"role": "tool", "content": "x",
                                                                                "tool_call_id": "1"}]), OK),
    ("tool_choice without tools", "chat", chat(tool_choice="auto"), (400, "invalid_value")),
    ("tool_choice unknown word", "chat", chat(tools=[{"type": "function", "function": {"name": "f"}}],
                                              tool_choice="always"), (400, "invalid_value")),
    ("json_object", "chat", chat(response_format={"type": "json_object"}), OK),
    ("json_schema", "chat", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}), OK),
    ("response_format unknown type", "chat", chat(response_format={"type": "yaml"}), (400, "invalid_value")),
    ("json_schema without schema", "chat", chat(response_format={"type": "json_schema"}), (400, "invalid_value")),
    ("json_schema invalid schema", "chat", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": 5}}}), (400, "invalid_value")),
    ("penalties and bias", "chat", chat(frequency_penalty=0.5, presence_penalty=-0.5, logit_bias={"5": -100}), OK),
    ("echoed empty assistant fields", "chat", chat(messages=[
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "refusal": None, "tool_calls": [], "annotations": None},
        {"role": "user", "content": "c"}]), OK),
    ("feedback empty", "feedback", b"", (400, "missing_body")),
    ("feedback float rating", "feedback", {"completion_id": "chatcmpl-x", "rating": 5.0}, (400, "invalid_value")),
    ("feedback string digit rating", "feedback", {"completion_id": "chatcmpl-x", "rating": "5"}, (400, "invalid_value")),
    ("feedback rating 0", "feedback", {"completion_id": "chatcmpl-x", "rating": 0}, (400, "invalid_value")),
    ("feedback unknown field", "feedback", {"completion_id": "chatcmpl-x", "rating": "up", "stars": 3},
     (400, "unknown_parameter")),
    ("feedback tags not a list", "feedback", {"completion_id": "chatcmpl-x", "rating": "up", "tags": "x"},
     (400, "invalid_value")),
    ("feedback unknown completion", "feedback", {"completion_id": "chatcmpl-x", "rating": True},
     (404, "completion_not_found")),
    ("load NUL in path", "load", {"lora_name": "x", "lora_path": "/tmp/a\x00b"}, (400, "invalid_value")),
    ("load path a number", "load", {"lora_name": "x", "lora_path": 5}, (400, "invalid_value")),
    ("load no path", "load", {"lora_name": "x"}, (400, "invalid_value")),
    ("load bad name", "load", {"lora_name": "a/b", "lora_path": "/tmp"}, (400, "adapter_error")),
    ("load missing folder", "load", {"lora_name": "x", "lora_path": "/nonexistent/adapter"}, (404, "adapter_error")),
    ("unload unknown", "unload", {"lora_name": "ghost"}, (404, "adapter_error")),
    ("unload empty", "unload", b"", (400, "missing_body")),
]

PATHS = {"chat": "/v1/chat/completions", "feedback": "/v1/feedback", "load": "/v1/load_lora_adapter",
         "unload": "/v1/unload_lora_adapter"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_llama_dir, serve_in_thread, project_runtime):
    folder = tmp_path_factory.mktemp("malformed")
    runtime = project_runtime(folder, tiny_llama_dir, "serve:\n  default_max_tokens: 2\n  max_tokens_limit: 64\n")
    with serve_in_thread(runtime) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield SimpleNamespace(client=client, runtime=runtime)


def test_the_corpus_is_large_and_covers_every_unsupported_parameter():
    assert len(CORPUS) >= 60
    refused = {name.removeprefix("unsupported ") for name, *_ in CORPUS if name.startswith("unsupported ")}
    assert refused >= set(UNSUPPORTED_PARAMETERS) - {"parallel_tool_calls", "function_call", "verbosity",
                                                    "prompt_cache_key", "safety_identifier"}


@pytest.mark.parametrize("name, endpoint, body, expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_each_body_gets_its_status_and_code(server, name, endpoint, body, expected):
    if isinstance(body, dict):
        body = json.dumps(body).replace('"MODEL"', json.dumps(server.runtime.base_id)).encode()
    response = server.client.post(PATHS[endpoint], content=body, headers={"Content-Type": "application/json"})
    status, code = expected
    assert response.status_code == status, response.text
    if code is not None:
        error = response.json()["error"]
        assert error["code"] == code and error["message"], error
        if code in ("unsupported_parameter", "unknown_parameter"):
            assert error["param"] and error["param"].split(".")[-1] in error["message"]


def test_after_the_corpus_the_server_answers_normally(server):
    for _name, endpoint, body, _ in CORPUS[:10]:
        server.client.post(PATHS[endpoint], content=body if isinstance(body, bytes) else json.dumps(body))
    health = server.client.get("/health")
    answer = server.client.post("/v1/chat/completions", json={"model": server.runtime.base_id, "messages": USER})
    assert health.status_code == 200 and answer.status_code == 200
    assert answer.json()["choices"][0]["finish_reason"] in ("stop", "length")
