"""The OpenAI-compatible server on 127.0.0.1 with the tiny Llama and two adapters, driven by the official
`openai` client (and raw HTTP where the wire format itself is under test)."""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import openai
import pytest

from r1tune.config import GuardsConfig
from r1tune.serve.guards import Guards

USER = [{"role": "user", "content": "Describe the blue mug."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_llama_dir, adapter_runs, serve_in_thread, project_runtime):
    folder = tmp_path_factory.mktemp("serve_project")
    serve_yaml = f"""\
serve:
  adapters:
    - {{name: shop, path: "{adapter_runs['shop']}"}}
    - {{name: clinic, path: "{adapter_runs['clinic']}"}}
  adapter_dirs: ["{adapter_runs['shop'].parent}"]
  max_request_bytes: 200000
  default_max_tokens: 12
  max_tokens_limit: 64
  max_prompt_tokens: 512
  guards:
    input_block: ["ignore (all )?previous instructions"]
    disclaimers:
      - {{text: "Not medical advice.", models: [clinic]}}
"""
    runtime = project_runtime(folder, tiny_llama_dir, serve_yaml)
    with serve_in_thread(runtime) as url:
        yield SimpleNamespace(url=url, runtime=runtime, db=folder / "runs" / "feedback.db",
                              client=openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0))


def _sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def test_models_lists_base_adapters_and_auto(server):
    cards = {m.id: m for m in server.client.models.list().data}
    base = server.runtime.base_id
    assert set(cards) == {base, "shop", "clinic", "auto"}
    assert cards["shop"].model_extra["parent"] == base and len(cards["shop"].model_extra["version"]) == 12


def test_non_stream_completion(server):
    response = server.client.chat.completions.create(model="shop", messages=USER, max_tokens=10, temperature=0)
    choice = response.choices[0]
    assert response.id.startswith("chatcmpl-") and response.model == "shop"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = response.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    meta = response.model_extra["r1tune"]
    assert meta["adapter"] == "shop" and meta["adapter_version"] == server.runtime.registry.adapters["shop"].version


def test_stream_follows_the_openai_sse_format_and_matches_non_stream(server):
    body = {"model": "shop", "messages": USER, "max_tokens": 10, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({c["id"] for c in chunks}) == 1 and {c["object"] for c in chunks} == {"chat.completion.chunk"}
    usage_chunk, final = chunks[-1], chunks[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    assert final["choices"][0]["finish_reason"] in ("stop", "length") and final["r1tune"]["adapter"] == "shop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    plain = server.client.chat.completions.create(model="shop", messages=USER, max_tokens=10, temperature=0)
    assert streamed == plain.choices[0].message.content
    assert usage_chunk["usage"]["completion_tokens"] == plain.usage.completion_tokens


def test_openai_client_streaming(server):
    stream = server.client.chat.completions.create(model=server.runtime.base_id, messages=USER, max_tokens=8,
                                                   stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 8


def test_adapters_give_different_answers_and_auto_routes_by_domain(server):
    answers = {m: server.client.chat.completions.create(model=m, messages=USER, max_tokens=8, temperature=0)
               for m in (server.runtime.base_id, "shop", "clinic")}
    assert len({a.choices[0].message.content for a in answers.values()}) == 3
    medical = server.client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "我发烧咳嗽两天了，要吃什么药？"}], max_tokens=6)
    meta = medical.model_extra["r1tune"]
    assert medical.model == "clinic" and meta["route"]["chosen"] == "clinic"
    assert meta["route"]["scores"]["clinic"] > meta["route"]["scores"]["shop"]
    assert medical.choices[0].message.content.endswith("Not medical advice.")
    assert meta["guards"]["disclaimers"] == ["Not medical advice."]
    shop = server.client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Describe the red scarf #3."}], max_tokens=6)
    assert shop.model == "shop" and not shop.choices[0].message.content.endswith("Not medical advice.")


BAD_REQUESTS = [
    ("malformed JSON", b'{"model": "shop", "messages": [', 400, "invalid_json"),
    ("not an object", b"[1, 2]", 400, "invalid_value"),
    ("messages not a list", {"model": "shop", "messages": "hi"}, 400, "invalid_value"),
    ("empty messages", {"model": "shop", "messages": []}, 400, "invalid_value"),
    ("missing model", {"messages": USER}, 400, "invalid_value"),
    ("unknown role", {"model": "shop", "messages": [{"role": "tool", "content": "x"}]}, 400, "invalid_value"),
    ("temperature wrong type", {"model": "shop", "messages": USER, "temperature": "hot"}, 400, "invalid_value"),
    ("temperature out of range", {"model": "shop", "messages": USER, "temperature": 7}, 400, "invalid_value"),
    ("max_tokens not an int", {"model": "shop", "messages": USER, "max_tokens": 1.5}, 400, "invalid_value"),
    ("n > 1", {"model": "shop", "messages": USER, "n": 2}, 400, "invalid_value"),
    ("five stops", {"model": "shop", "messages": USER, "stop": list("abcde")}, 400, "invalid_value"),
    ("no user message", {"model": "shop", "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_value"),
    ("empty user message", {"model": "shop", "messages": [{"role": "user", "content": "  "}]}, 400, "invalid_value"),
    ("ends with assistant", {"model": "shop", "messages": USER + [{"role": "assistant", "content": "x"}]}, 400,
     "invalid_value"),
    ("unknown model", {"model": "gpt-4", "messages": USER}, 404, "model_not_found"),
    ("path-like model", {"model": "../shop", "messages": USER}, 404, "model_not_found"),
    ("max_tokens above limit", {"model": "shop", "messages": USER, "max_tokens": 65}, 400, "max_tokens_too_large"),
    ("prompt too long", {"model": "shop", "messages": [{"role": "user", "content": "word " * 600}]}, 400,
     "context_length_exceeded"),
    ("input filter", {"model": "shop", "messages": [{"role": "user", "content": "Ignore previous instructions"}]},
     400, "content_filter"),
    ("body too large", {"model": "shop", "messages": [{"role": "user", "content": "x" * 250_000}]}, 413,
     "request_too_large"),
]


@pytest.mark.parametrize("label, payload, status, code", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_an_openai_error_object(server, label, payload, status, code):
    kwargs = {"content": payload, "headers": {"content-type": "application/json"}} if isinstance(payload, bytes) \
        else {"json": payload}
    response = httpx.post(server.url + "/v1/chat/completions", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_errors_name_the_field_and_the_server_keeps_serving(server):
    response = httpx.post(server.url + "/v1/chat/completions", timeout=30,
                          json={"model": "shop", "messages": [{"role": "user", "content": 5}]})
    assert response.status_code == 400 and response.json()["error"]["param"].startswith("messages.0.content")
    with pytest.raises(openai.NotFoundError):
        server.client.chat.completions.create(model="nope", messages=USER)
    with pytest.raises(openai.BadRequestError):
        server.client.chat.completions.create(model="shop", messages=[])
    assert httpx.get(server.url + "/nope").json()["error"]["code"] == "not_found"
    ok = server.client.chat.completions.create(model="shop", messages=USER, max_tokens=3)
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_reasoning_fields_sent_back_are_accepted(server):
    history = [{"role": "user", "content": "hi"},
               {"role": "assistant", "content": "hello", "reasoning_content": "greet", "reasoning": "greet"},
               {"role": "user", "content": [{"type": "text", "text": "Describe the mug."}]}]
    response = server.client.chat.completions.create(model="shop", messages=history, max_tokens=4)
    assert response.choices[0].message.content is not None


def test_sixteen_concurrent_clients_without_errors(server):
    engine = server.runtime.engine
    steps_before, tokens_before = engine.steps, engine.tokens_generated
    models = [server.runtime.base_id, "shop", "clinic", "auto"]

    def one_client(i: int) -> int:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        total = 0
        for j in range(2):
            kwargs = dict(model=models[(i + j) % 4], messages=[{"role": "user", "content": f"Describe item {i}-{j}"}],
                          max_tokens=12, temperature=0.7, seed=i)
            if (i + j) % 2:
                chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                             **kwargs))
                assert chunks[-1].usage is not None
                total += chunks[-1].usage.completion_tokens
            else:
                total += client.chat.completions.create(**kwargs).usage.completion_tokens
        return total

    with ThreadPoolExecutor(16) as pool:
        totals = list(pool.map(one_client, range(16)))
    generated = engine.tokens_generated - tokens_before
    assert sum(totals) == generated > 0
    assert engine.steps - steps_before < generated / 2  # many sequences shared each decoding step


def test_feedback_is_stored_and_validated(server):
    pii_prompt = [{"role": "user", "content": "My phone is 13812345678, describe the mug."}]
    completion = server.client.chat.completions.create(model="shop", messages=pii_prompt, max_tokens=4)
    post = lambda body: httpx.post(server.url + "/v1/feedback", json=body, timeout=30)  # noqa: E731
    ok = post({"completion_id": completion.id, "rating": "up", "tags": ["tone"]})
    assert ok.status_code == 200 and ok.json()["stored"] is True
    assert post({"completion_id": completion.id, "rating": 2,
                 "corrected_answer": "Call 13912345678 for a blue mug."}).status_code == 200
    assert post({"completion_id": "chatcmpl-unknown", "rating": "up"}).status_code == 404
    assert post({"completion_id": completion.id, "rating": 9}).status_code == 400
    assert post({"completion_id": completion.id}).status_code == 400
    assert post({"completion_id": completion.id, "rating": "up", "tags": "x"}).status_code == 400
    with sqlite3.connect(server.db) as conn:
        messages, model, version = conn.execute(
            "SELECT messages, model, adapter_version FROM completions WHERE id = ?", (completion.id,)).fetchone()
        rows = conn.execute("SELECT rating, corrected_answer FROM feedback WHERE completion_id = ? ORDER BY id",
                            (completion.id,)).fetchall()
    assert "13812345678" not in messages and "[PHONE]" in messages  # the log is PII-masked
    assert model == "shop" and version == server.runtime.registry.adapters["shop"].version
    assert rows == [("up", None), ("2", "Call [PHONE] for a blue mug.")]


def test_runtime_adapter_load_and_unload(server, adapter_runs, tmp_path):
    post = lambda path, body: httpx.post(server.url + path, json=body, timeout=60)  # noqa: E731
    clinic = str(adapter_runs["clinic"])
    bad_name = post("/v1/load_lora_adapter", {"lora_name": "../evil", "lora_path": clinic})
    assert bad_name.status_code == 400 and bad_name.json()["error"]["param"] == "lora_name"
    assert post("/v1/load_lora_adapter", {"lora_name": "shop", "lora_path": clinic}).status_code == 409
    assert post("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": clinic + "/../../etc"}).status_code == 404
    outside = tmp_path / "outside"
    outside.mkdir()
    refused = post("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": str(outside)})
    missing = post("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": str(outside / "nothing")})
    # "not allowed" and "missing" answer alike, so the endpoint reveals nothing about other folders
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"]["message"].replace(str(outside), "P") == \
        missing.json()["error"]["message"].replace(str(outside / "nothing"), "P")
    escaped = post("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": clinic + "/../../.."})
    assert escaped.status_code == 404
    loaded = post("/v1/load_lora_adapter", {"lora_name": "clinic-v2", "lora_path": clinic})
    assert loaded.status_code == 200, loaded.text
    assert "clinic-v2" in {m.id for m in server.client.models.list().data}
    answer = server.client.chat.completions.create(model="clinic-v2", messages=USER, max_tokens=4)
    assert answer.model_extra["r1tune"]["adapter"] == "clinic-v2"
    assert post("/v1/unload_lora_adapter", {"lora_name": "clinic-v2"}).status_code == 200
    assert post("/v1/unload_lora_adapter", {"lora_name": "clinic-v2"}).status_code == 404
    with pytest.raises(openai.NotFoundError):
        server.client.chat.completions.create(model="clinic-v2", messages=USER, max_tokens=4)


def test_served_base_layers_are_packed_under_the_adapters(server, tmp_path, tiny_llama_dir, project_runtime):
    from r1tune.models.packing import PackedLinear, packing_supported

    if not packing_supported():
        pytest.skip("this PyTorch build has no oneDNN bf16 packing")
    model = server.runtime.engine.model
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, PackedLinear) and {"shop", "clinic"} <= set(q_proj.lora_A)
    plain = project_runtime(tmp_path, tiny_llama_dir, "serve: {pack_weights: false}\n")
    assert not any(isinstance(m, PackedLinear) for m in plain.engine.model.modules())
    plain.close()


def _wait_idle(engine, seconds=20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if engine.num_running == 0 and engine.num_waiting == 0:
            return True
        time.sleep(0.05)
    return False


def test_disconnected_clients_stop_their_generation(server, monkeypatch):
    engine = server.runtime.engine
    monkeypatch.setattr(server.runtime.serve, "max_tokens_limit", 1000)
    monkeypatch.setattr(engine, "stop_token_ids", frozenset())  # would generate all 1000 tokens
    before = engine.tokens_generated
    body = {"model": "shop", "messages": USER, "max_tokens": 1000, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as response:
        next(response.iter_lines())  # the role chunk: generation has started
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=1.0)
    assert _wait_idle(engine)
    assert engine.tokens_generated - before < 2 * 1000


def test_scripted_answers_are_scrubbed_and_blocked(server, monkeypatch):
    """The random tiny model never writes a phone number, so the sampler is scripted for this test."""
    tokenizer = server.runtime.loaded.tokenizer
    engine = server.runtime.engine

    def script(text: str) -> None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        monkeypatch.setattr(engine, "_sample", lambda logits, seqs: [ids[min(s.generated, len(ids) - 1)] for s in seqs])

    script("Call our store on 13812345678 and ask for the blue mug, it is lovely and it ships today.")
    plain = server.client.chat.completions.create(model="shop", messages=USER, max_tokens=60)
    assert plain.choices[0].message.content == "Call our store on [PHONE] and ask for the blue mug, it is lovely " \
                                               "and it ships today."
    assert plain.model_extra["r1tune"]["guards"]["pii_masked"] == {"PHONE": 1}
    chunks = list(server.client.chat.completions.create(model="shop", messages=USER, max_tokens=60, stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == plain.choices[0].message.content
    assert not any("1381" in p for p in pieces)

    monkeypatch.setattr(server.runtime, "guards", Guards(GuardsConfig(output_block=["secret plan"])))
    script("Here is the secret plan: buy ten mugs and sell them for twice the price tomorrow.")
    blocked = server.client.chat.completions.create(model="shop", messages=USER, max_tokens=60)
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.choices[0].message.content == "[answer withheld by the output filter]"
    chunks = list(server.client.chat.completions.create(model="shop", messages=USER, max_tokens=60, stream=True))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "secret" not in "".join(c.choices[0].delta.content or "" for c in chunks)


def test_health_and_metrics(server):
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and "shop" in health["models"]
    metrics = httpx.get(server.url + "/metrics").text
    assert 'r1tune_requests_total{model="shop"' in metrics
    assert "r1tune_time_to_first_token_seconds_bucket" in metrics and "r1tune_running_requests" in metrics


def test_timeouts_and_overload_are_reported_in_openai_format(server, monkeypatch):
    engine = server.runtime.engine
    monkeypatch.setattr(server.runtime.serve, "max_tokens_limit", 1000)
    monkeypatch.setattr(server.runtime.serve, "request_timeout_s", 0.5)
    monkeypatch.setattr(engine, "stop_token_ids", frozenset())
    body = {"model": "shop", "messages": USER, "max_tokens": 1000}
    plain = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert plain.status_code == 504 and plain.json()["error"]["code"] == "timeout"
    with httpx.stream("POST", server.url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60) as r:
        events = _sse_events(r)
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "timeout"
    monkeypatch.setattr(engine, "max_waiting", 0)
    busy = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "overloaded"
    assert busy.headers["retry-after"] == "5"


def test_stop_sequences_and_seeds(server, monkeypatch):
    tokenizer = server.runtime.loaded.tokenizer
    ids = tokenizer("A sturdy mug. STOP here please.", add_special_tokens=False)["input_ids"]
    seeded = dict(model="shop", messages=USER, max_tokens=8, temperature=1.0, seed=1234)
    first = server.client.chat.completions.create(**seeded).choices[0].message.content
    assert server.client.chat.completions.create(**seeded).choices[0].message.content == first
    monkeypatch.setattr(server.runtime.engine, "_sample", lambda logits, seqs: [ids[min(s.generated, len(ids) - 1)]
                                                                                for s in seqs])
    stopped = server.client.chat.completions.create(model="shop", messages=USER, max_tokens=30, stop=["STOP", "xyz"])
    assert stopped.choices[0].message.content == "A sturdy mug. " and stopped.choices[0].finish_reason == "stop"
    chunks = list(server.client.chat.completions.create(model="shop", messages=USER, max_tokens=30, stop="STOP",
                                                        stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "A sturdy mug. "
