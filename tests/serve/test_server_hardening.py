"""Serving hardening over HTTP: no client can break another's answer, admin paths stay inside the allowed
folders, a failed adapter load changes nothing, a 500 keeps the connection usable, large prompts do not
stall the event loop, key guessing is rate-limited, ratings are strictly typed, and every request is
counted. Each test reproduces a defect found by attacking the server."""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest

from r1tune.serve import add_key

USER = [{"role": "user", "content": "Describe the blue mug."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_llama_dir, adapter_runs, serve_in_thread, project_runtime):
    folder = tmp_path_factory.mktemp("hardening")
    allowed = folder / "adapters"
    shutil.copytree(adapter_runs["shop"], allowed / "shop")
    serve_yaml = f"""\
serve:
  adapter_dirs: ["{allowed}"]
  default_max_tokens: 8
  max_tokens_limit: 64
  max_batch_size: 8
"""
    runtime = project_runtime(folder, tiny_llama_dir, serve_yaml)
    with serve_in_thread(runtime) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield SimpleNamespace(url=url, runtime=runtime, client=client, allowed=allowed,
                              outside=adapter_runs["clinic"], db=folder / "runs" / "feedback.db")


def _stream(url: str, body: dict) -> list[str]:
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, timeout=120) as response:
        assert response.status_code == 200, response.read()
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_a_request_answered_by_a_stop_token_leaves_three_concurrent_streams_intact(server):
    base = server.runtime.base_id
    stop_id = server.runtime.engine.stop_token_ids
    poison = {"model": base, "messages": USER, "max_tokens": 8, "logit_bias": {str(min(stop_id)): 100}}
    normal = {"model": base, "messages": USER, "max_tokens": 24, "temperature": 0}
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(_stream, server.url, normal) for _ in range(3)]
        time.sleep(0.3)  # the poisoned request joins a batch that is already decoding
        poisoned = pool.submit(_stream, server.url, poison).result()
        bystanders = [f.result() for f in futures]
    for events in [*bystanders, poisoned]:
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert not any("error" in c for c in chunks), chunks
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    poisoned_text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in poisoned[:-1])
    assert poisoned_text == ""  # it really was answered by its first token


def _load(server, name: str, path, **extra):
    return server.client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path), **extra})


def test_symlinks_out_of_the_allowed_folders_are_refused_like_missing_paths(server):
    run = server.allowed / "linked-run"
    (run / "train").mkdir(parents=True)
    shutil.copy(server.allowed / "shop" / "config.yaml", run / "config.yaml")
    (run / "train" / "adapter").symlink_to(server.outside / "train" / "adapter")
    weights = server.allowed / "linked-weights"
    weights.mkdir()
    shutil.copy(server.outside / "train" / "adapter" / "adapter_config.json", weights)
    (weights / "adapter_model.safetensors").symlink_to(server.outside / "train" / "adapter" / "adapter_model.safetensors")
    missing = _load(server, "x", server.allowed / "no-such-run")
    for path in (run, weights, server.outside, server.allowed / ".." / ".."):
        refused = _load(server, "x", path)
        assert refused.status_code == 404 == missing.status_code, refused.text
        assert refused.json()["error"]["message"].endswith("does not exist inside the allowed adapter folders "
                                                          "(serve.adapter_dirs)")
    assert "x" not in server.runtime.registry.adapters


def test_router_data_outside_the_allowed_folders_reveals_nothing(server):
    outside_file = server.outside / "data" / "train.jsonl"
    answers = [_load(server, "routed", server.allowed / "shop", router_data=str(p)) for p in
               (outside_file, server.outside / "nothing.jsonl", "/etc/passwd")]
    assert {a.status_code for a in answers} == {404}
    assert {a.json()["error"]["param"] for a in answers} == {"router_data"}
    inside = server.allowed / "prompts.jsonl"
    shutil.copy(outside_file, inside)
    loaded = _load(server, "routed", server.allowed / "shop", router_data=str(inside))
    assert loaded.status_code == 200, loaded.text
    assert server.client.post("/v1/unload_lora_adapter", json={"lora_name": "routed"}).status_code == 200


def _model_shape(model) -> list[tuple[str, str]]:
    return [(name, type(module).__name__) for name, module in model.named_modules()]


def test_a_corrupt_adapter_is_refused_and_leaves_the_model_unchanged(server):
    corrupt = server.allowed / "corrupt"
    shutil.copytree(server.allowed / "shop" / "train" / "adapter", corrupt)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    engine = server.runtime.engine
    before_model, before_shape = engine.model, _model_shape(engine.model)
    answer_before = server.client.post("/v1/chat/completions", json={"model": server.runtime.base_id,
                                                                      "messages": USER, "temperature": 0})
    refused = _load(server, "corrupt", corrupt)
    assert refused.status_code == 400 and "not a readable safetensors file" in refused.json()["error"]["message"]
    assert engine.model is before_model and _model_shape(engine.model) == before_shape
    answer_after = server.client.post("/v1/chat/completions", json={"model": server.runtime.base_id,
                                                                     "messages": USER, "temperature": 0})
    assert answer_after.json()["choices"][0]["message"] == answer_before.json()["choices"][0]["message"]


def test_an_attach_that_fails_inside_peft_is_rolled_back(tiny_llama_dir, tmp_path):
    """Weights of the wrong shape pass the file check and fail inside PEFT, after it has wrapped layers."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1tune.serve.adapters import AdapterError, AdapterRegistry
    from r1tune.serve.engine import Engine

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), lora).save_pretrained(tmp_path / "good")
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    from safetensors.torch import load_file, save_file

    tensors = {k: torch.zeros(v.shape[0] + 3, *v.shape[1:]) for k, v in load_file(tmp_path / "bad" / "adapter_model.safetensors").items()}
    save_file(tensors, tmp_path / "bad" / "adapter_model.safetensors")
    from transformers import AutoTokenizer

    engine = Engine(model, AutoTokenizer.from_pretrained(tiny_llama_dir), [])  # not started: commands run inline
    registry = AdapterRegistry(engine)
    shape = _model_shape(model)
    with pytest.raises(AdapterError, match="cannot attach adapter 'bad'"):
        registry.load("bad", tmp_path / "bad")
    assert engine.model is model and not isinstance(engine.model, PeftModel) and _model_shape(model) == shape
    registry.load("good", tmp_path / "good")
    peft_shape = _model_shape(engine.model)
    with pytest.raises(AdapterError, match="cannot attach adapter 'bad'"):
        registry.load("bad", tmp_path / "bad")
    assert _model_shape(engine.model) == peft_shape and set(engine.model.peft_config) == {"good"}
    registry.unload("good")
    assert not isinstance(engine.model, PeftModel) and _model_shape(engine.model) == shape


def test_an_unexpected_error_is_a_500_and_the_connection_stays_usable(server, monkeypatch):
    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server.runtime.metrics, "render", broken)
    with httpx.Client(base_url=server.url, timeout=30) as client:  # one kept-alive connection
        failed = client.get("/metrics")
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "server_error" and "secret" not in failed.text
        assert client.get("/health").status_code == 200
        assert client.post("/v1/chat/completions", json={"model": server.runtime.base_id,
                                                          "messages": USER}).status_code == 200


def test_health_stays_fast_while_large_prompts_are_refused(server):
    big = {"model": server.runtime.base_id, "messages": [{"role": "user", "content": "mug " * 237_000}]}
    stop = threading.Event()

    def flood() -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while not stop.is_set():
                statuses.append(client.post("/v1/chat/completions", json=big).status_code)
        return statuses

    with ThreadPoolExecutor(3) as pool:
        floods = [pool.submit(flood) for _ in range(3)]
        time.sleep(0.5)
        timings = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(40):
                start = time.perf_counter()
                assert client.get("/health").status_code == 200
                timings.append(time.perf_counter() - start)
                time.sleep(0.05)
        stop.set()
        statuses = [s for f in floods for s in f.result()]
    assert statuses and set(statuses) == {400}  # each refused: too long for the token limit
    # Measured on the 2-core development machine: median 2-4 ms. Asserted generously for loaded CI machines.
    assert statistics.median(timings) < 0.05, timings
    assert max(timings) < 1.0, timings


def test_feedback_ratings_are_strictly_typed(server):
    completion = server.client.post("/v1/chat/completions",
                                    json={"model": server.runtime.base_id, "messages": USER}).json()
    post = lambda rating: server.client.post(  # noqa: E731
        "/v1/feedback", json={"completion_id": completion["id"], "rating": rating})
    assert post(True).status_code == 200 and post(False).status_code == 200
    assert post(5).status_code == 200
    for wrong in (5.0, 1.0, "5", 0, 6, None):
        assert post(wrong).status_code == 400, wrong
    import sqlite3

    with sqlite3.connect(server.db) as conn:
        rows = conn.execute("SELECT rating FROM feedback WHERE completion_id = ? ORDER BY id",
                            (completion["id"],)).fetchall()
    assert rows == [("up",), ("down",), ("5",)]  # true is a thumbs-up, never the worst rating


def _requests_total(server, outcome: str) -> float:
    text = server.client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith("r1tune_requests_total{") and f'status="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_stream_whose_client_disconnects_is_counted(server):
    before = _requests_total(server, "cancelled")
    body = {"model": server.runtime.base_id, "messages": USER, "max_tokens": 64, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        next(response.iter_lines())  # the role chunk: the stream is running; then hang up
    deadline = time.monotonic() + 20
    while _requests_total(server, "cancelled") == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _requests_total(server, "cancelled") == before + 1


def test_an_adapter_being_unloaded_is_no_longer_listed(server):
    registry = server.runtime.registry
    assert _load(server, "leaving", server.allowed / "shop").status_code == 200
    registry._unloading.add("leaving")  # the window while its last requests finish
    try:
        listed = {m["id"] for m in server.client.get("/v1/models").json()["data"]}
        refused = server.client.post("/v1/chat/completions", json={"model": "leaving", "messages": USER})
    finally:
        registry._unloading.discard("leaving")
    assert "leaving" not in listed and refused.status_code == 404
    assert server.client.post("/v1/unload_lora_adapter", json={"lora_name": "leaving"}).status_code == 200


@pytest.fixture(scope="module")
def locked(tmp_path_factory, tiny_llama_dir, serve_in_thread, project_runtime):
    folder = tmp_path_factory.mktemp("lockout")
    keys_file = folder / "keys.txt"
    key = add_key(keys_file, "alice")
    runtime = project_runtime(folder, tiny_llama_dir, f"""\
serve:
  api_keys_file: {keys_file}
  auth_failures_per_minute: 3
  log_completions: false
""")
    with serve_in_thread(runtime) as url:
        yield SimpleNamespace(url=url, key=key)


def test_failed_key_attempts_lock_the_address_out_even_for_the_right_key(locked):
    get = lambda key: httpx.get(locked.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})  # noqa: E731
    assert get(locked.key).status_code == 200
    assert [get(f"r1t-guess-{i}").status_code for i in range(3)] == [401, 401, 401]
    guessing = get("r1t-guess-4")
    assert guessing.status_code == 429 and guessing.json()["error"]["code"] == "too_many_auth_failures"
    assert int(guessing.headers["retry-after"]) >= 1
    assert get(locked.key).status_code == 429  # a right guess during the lock-out learns nothing
