"""r1tune as a gateway (`serve.engine: openai`) in front of an upstream that is r1tune's own builtin server on
127.0.0.1: the same greedy answers, streamed or not, as asking the upstream directly; r1tune's rendering
reaches the upstream as token ids through `/v1/completions`; what the upstream cannot do is refused with a
400; an unreachable upstream or `engine: vllm` without a GPU fails at start-up, naming what is missing."""

from __future__ import annotations

import json

import httpx
import pytest
from serve_helpers import build_project_runtime, running_server

from r1tune.errors import ConfigError, R1TuneError

MESSAGES = [{"role": "user", "content": "Describe a blue ceramic mug."}]


@pytest.fixture(scope="module")
def upstream(tiny_llama_dir, tmp_path_factory):
    runtime = build_project_runtime(tmp_path_factory.mktemp("upstream"), tiny_llama_dir)
    runtime.start()
    with running_server(runtime) as url:
        yield url, runtime
    runtime.close()


@pytest.fixture(scope="module")
def gateway(upstream, tiny_llama_dir, tmp_path_factory):
    url, _ = upstream
    runtime = build_project_runtime(tmp_path_factory.mktemp("gateway"), tiny_llama_dir,
                                    f"serve: {{engine: openai, upstream_url: '{url}/v1'}}")
    runtime.start()
    with running_server(runtime) as gateway_url:
        yield gateway_url, runtime
    runtime.close()


def _chat(url: str, model: str, **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=120,
                      json={"model": model, "messages": MESSAGES, "max_tokens": 12, "temperature": 0, **extra})


def test_gateway_answers_exactly_as_the_upstream_does(upstream, gateway):
    (up_url, up_runtime), (gw_url, gw_runtime) = upstream, gateway
    assert type(gw_runtime.engine).__name__ == "UpstreamEngine" and gw_runtime.loaded.model is None
    direct = _chat(up_url, up_runtime.base_id).json()
    through = _chat(gw_url, gw_runtime.base_id).json()
    assert through["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert through["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"]
    assert through["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]  # the same rendering, as ids


def test_gateway_streams_the_upstreams_text(upstream, gateway):
    (up_url, up_runtime), (gw_url, gw_runtime) = upstream, gateway
    direct = _chat(up_url, up_runtime.base_id).json()["choices"][0]["message"]["content"]
    with httpx.stream("POST", f"{gw_url}/v1/chat/completions", timeout=120,
                      json={"model": gw_runtime.base_id, "messages": MESSAGES, "max_tokens": 12, "temperature": 0,
                            "stream": True}) as reply:
        chunks = [json.loads(line[5:]) for line in reply.iter_lines() if line.startswith("data:") and "[DONE]" not in line]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == direct and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_upstream_completions_take_token_ids(upstream):
    url, runtime = upstream
    ids = runtime.loaded.renderer.render_prompt([])  # any ids the model can read
    reply = httpx.post(f"{url}/v1/completions", timeout=60,
                       json={"model": runtime.base_id, "prompt": ids, "max_tokens": 4, "temperature": 0}).json()
    assert reply["object"] == "text_completion" and reply["usage"]["prompt_tokens"] == len(ids)
    bad = httpx.post(f"{url}/v1/completions", timeout=60, json={"model": runtime.base_id, "prompt": [10**9]})
    assert bad.status_code == 400 and "prompt token ids must lie in" in bad.text


def test_what_an_upstream_cannot_do_is_refused(gateway):
    url, runtime = gateway
    reply = _chat(url, runtime.base_id, logprobs=True)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "unsupported_parameter"
    reply = _chat(url, runtime.base_id, response_format={"type": "json_object"})
    assert reply.status_code == 400 and "serve.engine: openai" in reply.json()["error"]["message"]


def test_an_unreachable_upstream_fails_at_start_up(tiny_llama_dir, tmp_path):
    with pytest.raises(R1TuneError, match="cannot list the upstream's models at http://127.0.0.1:9/v1/models"):
        build_project_runtime(tmp_path, tiny_llama_dir, "serve: {engine: openai, upstream_url: 'http://127.0.0.1:9/v1'}")


def test_engine_openai_without_url_and_vllm_without_gpu_are_refused(tiny_llama_dir, tmp_path):
    import torch

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match="serve.engine: openai needs serve.upstream_url"):
        build_project_runtime(tmp_path / "a", tiny_llama_dir, "serve: {engine: openai}")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="serve.engine: vllm needs a CUDA GPU"):
            build_project_runtime(tmp_path / "b", tiny_llama_dir, "serve: {engine: vllm}")


def test_serve_engine_auto_is_the_builtin_engine_on_a_machine_without_cuda(tiny_llama_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: auto picks vLLM where it is installed")
    runtime = build_project_runtime(tmp_path, tiny_llama_dir)  # serve.engine left at its default, auto
    assert runtime.serve.engine == "auto" and runtime.engine.name == "builtin" and runtime.loaded.model is not None


def test_the_vllm_child_command_serves_loopback_with_runtime_lora():
    from r1tune.serve.gateway import vllm_command

    command = vllm_command("/models/r1-7b", "r1-7b", 8100, gpus=4)
    assert command[1:4] == ["-m", "vllm.entrypoints.cli.main", "serve"]  # what `vllm serve` runs
    joined = " ".join(command)
    assert "--host 127.0.0.1 --port 8100" in joined and "--enable-lora" in joined
    assert "--tensor-parallel-size 4" in joined and "--served-model-name r1-7b" in joined
    tuned = vllm_command("/models/r1-7b", "r1-7b", 8100, gpus=1, extra_args=["--max-model-len", "16384"])
    assert tuned[-2:] == ["--max-model-len", "16384"] and tuned[:-2] == vllm_command("/models/r1-7b", "r1-7b", 8100, 1)


@pytest.mark.parametrize(("version", "extra", "context"), [
    ("0.14.0", [], ["--max-model-len", "auto"]),  # the first vLLM that fits the context itself
    ("0.15.1rc2", [], ["--max-model-len", "auto"]),
    ("0.13.2", [], []),  # older ones take no `auto`: they keep the model's window
    (None, [], []),
    ("not-a-version", [], []),
    ("0.14.0", ["--max_model_len=8192"], ["--max_model_len=8192"]),  # the user's, in either spelling, wins
    ("0.14.0", ["--max-model-len", "16384"], ["--max-model-len", "16384"]),
])
def test_the_vllm_child_fits_its_context_to_the_gpu_where_vllm_can(version, extra, context):
    from r1tune.serve.gateway import vllm_command

    command = vllm_command("/models/r1-7b", "r1-7b", 8100, gpus=1, extra_args=extra, vllm_version=version)
    base = vllm_command("/models/r1-7b", "r1-7b", 8100, gpus=1)
    assert command == base + context


def test_the_gateway_holds_requests_to_the_context_the_upstream_reports(upstream, gateway):
    (_, up_runtime), (gw_url, gw_runtime) = upstream, gateway
    assert gw_runtime.max_context == up_runtime.max_context == 1024  # the tiny model's window, via /v1/models
    listed = httpx.get(f"{gw_url}/v1/models", timeout=30).json()["data"]
    assert {m["id"]: m["max_model_len"] for m in listed}[gw_runtime.base_id] == 1024
    reply = _chat(gw_url, gw_runtime.base_id, max_tokens=1500)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"
    assert "context of 1024 tokens" in reply.json()["error"]["message"]


@pytest.mark.parametrize("flag", ["--port", "--max-lora-rank=8", "--max_lora_rank=8", "-tp", "--model"])
def test_vllm_flags_r1tune_sets_itself_are_refused_in_vllm_args(flag):
    from pydantic import ValidationError

    from r1tune.config.serve import ServeConfig

    with pytest.raises(ValidationError, match=f"{flag.split('=')[0]} is set by r1tune itself"):
        ServeConfig(vllm_args=["--max-model-len", "8192", flag, "1"])
    assert ServeConfig(vllm_args=["--max-model-len", "8192"]).vllm_args == ["--max-model-len", "8192"]


def test_a_request_waiting_for_an_upstream_worker_holds_its_adapter():
    """An adapter is detached only when unused: a request queued behind busy workers uses it too."""
    import threading
    import time

    from r1tune.serve.engine import EngineRequest, Finished, SamplingParams
    from r1tune.serve.upstream import UpstreamEngine

    engine = UpstreamEngine("http://127.0.0.1:9/v1", "base", [0], max_concurrent=1)
    release = threading.Event()

    def held(request):
        assert release.wait(30)
        request.emit(Finished("stop", 1, 0))

    engine._stream = held  # type: ignore[method-assign]
    engine.start()
    try:
        done = [threading.Event(), threading.Event()]
        for adapter, finished in zip(("shop", "clinic"), done, strict=True):
            engine.submit(EngineRequest([1], SamplingParams(max_tokens=1), lambda _e, f=finished: f.set(),
                                        adapter=adapter))
        assert engine.adapters_in_use() == {"shop", "clinic"}  # whether or not the worker has started
        deadline = time.monotonic() + 30
        while engine.num_running < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.num_running == 1 and engine.num_waiting == 1
        assert engine.adapters_in_use() == {"shop", "clinic"}
        release.set()
        assert all(event.wait(30) for event in done)
        assert engine.adapters_in_use() == set()
    finally:
        engine.stop()
