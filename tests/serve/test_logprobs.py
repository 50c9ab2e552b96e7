"""`logprobs` / `top_logprobs`: one entry per answer token, bytes that join back into the answer (Chinese
included), greedy tokens that are their step's most likely, and the same entries streamed and not."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from serve_helpers import MODEL_FORMATS, serve_formats_model, think_close_bias

PROMPT = [{"role": "user", "content": "用中文描述蓝色的杯子 and the blue mug."}]


@pytest.fixture(scope="module", params=MODEL_FORMATS)
def server(request, tmp_path_factory):
    with serve_formats_model(request, tmp_path_factory,
                             "serve:\n  guards: {scrub_pii: false}\n  log_completions: false\n") as served:
        yield served


def _body(server, **extra):
    return {"model": server.runtime.base_id, "messages": PROMPT, "max_tokens": 24, "temperature": 0,
            "logprobs": True, "top_logprobs": 3, **extra}


def test_entries_cover_the_answer_and_greedy_tokens_are_the_most_likely(server):
    extra = {"logit_bias": think_close_bias(server)}
    choice = httpx.post(server.url + "/v1/chat/completions", json=_body(server, **extra), timeout=60).json()["choices"][0]
    entries = choice["logprobs"]["content"]
    assert entries, choice
    content = choice["message"]["content"]
    # the answer is exactly the entries' bytes joined (leading whitespace is trimmed by the R1 splitter)
    joined = bytes(b for e in entries for b in e["bytes"]).decode("utf-8")
    assert joined.strip() == content.strip()
    for entry in entries:
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 3
        best = entry["top_logprobs"][0]
        assert math.isclose(best["logprob"], entry["logprob"], abs_tol=1e-5)
        assert [t["logprob"] for t in entry["top_logprobs"]] == sorted((t["logprob"] for t in entry["top_logprobs"]),
                                                                       reverse=True)


def test_streamed_entries_equal_the_non_streamed_ones(server):
    plain = httpx.post(server.url + "/v1/chat/completions", json=_body(server), timeout=60).json()["choices"][0]
    streamed = []
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=_body(server, stream=True),
                      timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    streamed += (choice.get("logprobs") or {}).get("content") or []
    assert streamed == (plain["logprobs"] or {}).get("content", [])


def test_without_logprobs_none_are_sent(server):
    body = _body(server)
    del body["logprobs"], body["top_logprobs"]
    choice = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).json()["choices"][0]
    assert choice["logprobs"] is None


def test_only_answer_tokens_are_listed_for_a_reasoning_model(server):
    if not server.think:
        pytest.skip("ChatML model: no reasoning")
    choice = httpx.post(server.url + "/v1/chat/completions", json=_body(server), timeout=60).json()["choices"][0]
    # unbiased, the random model never leaves its reasoning: all 24 tokens are reasoning, none is listed
    assert choice["message"]["reasoning_content"] and choice["message"]["content"] == ""
    assert choice["logprobs"]["content"] == []
