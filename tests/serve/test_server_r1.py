"""DeepSeek-R1 format (tiny Qwen2 + R1 tokenizer): reasoning goes to `reasoning_content` and `reasoning`,
the answer to `content`, streamed and not, and clients may send reasoning back."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import openai
import pytest

REASONING = "The user wants a mug. Blue is calm."
ANSWER = "The blue mug holds 350 ml."
USER = [{"role": "user", "content": "Describe the blue mug."}]


@pytest.fixture(scope="module")
def r1(tmp_path_factory, tiny_qwen_r1_dir, serve_in_thread, project_runtime):
    runtime = project_runtime(tmp_path_factory.mktemp("r1"), tiny_qwen_r1_dir, "serve: {default_max_tokens: 64}\n")
    assert runtime.loaded.renderer.fmt.name == "deepseek-r1"
    with serve_in_thread(runtime) as url:
        yield SimpleNamespace(url=url, runtime=runtime,
                              client=openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0))


@pytest.fixture
def scripted(r1, monkeypatch):
    """The random tiny model never closes its think block, so the sampler writes a real R1 answer."""
    tokenizer = r1.runtime.loaded.tokenizer
    text = f"\n{REASONING}\n</think>\n\n{ANSWER}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokenizer.convert_tokens_to_ids("</think>") in ids
    monkeypatch.setattr(r1.runtime.engine, "_sample",
                        lambda logits, seqs: [ids[min(s.generated, len(ids) - 1)] for s in seqs])


def test_non_stream_splits_reasoning_from_the_answer(r1, scripted):
    response = r1.client.chat.completions.create(model=r1.runtime.base_id, messages=USER)
    message = response.choices[0].message
    assert message.content == ANSWER
    assert message.model_extra["reasoning_content"] == REASONING == message.model_extra["reasoning"]
    assert response.choices[0].finish_reason == "stop"


def test_stream_sends_reasoning_deltas_then_content_deltas(r1, scripted):
    body = {"model": r1.runtime.base_id, "messages": USER, "stream": True}
    with httpx.stream("POST", r1.url + "/v1/chat/completions", json=body, timeout=60) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[1:-1]]
    kinds = [("reasoning" if "reasoning_content" in d else "content") for d in deltas if d]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning before any content
    assert "".join(d.get("reasoning_content", "") for d in deltas) == REASONING
    assert all(d.get("reasoning") == d.get("reasoning_content") for d in deltas)
    assert "".join(d.get("content", "") for d in deltas) == ANSWER
    assert not any("think>" in json.dumps(d) for d in deltas)


def test_reasoning_sent_back_in_history_is_accepted(r1, scripted):
    history = USER + [{"role": "assistant", "content": ANSWER, "reasoning_content": REASONING,
                       "reasoning": REASONING}, {"role": "user", "content": "And the red one?"}]
    response = r1.client.chat.completions.create(model=r1.runtime.base_id, messages=history)
    assert response.choices[0].message.content == ANSWER


def test_unclosed_think_block_is_all_reasoning(r1):
    response = r1.client.chat.completions.create(model=r1.runtime.base_id, messages=USER, max_tokens=6,
                                                 temperature=0)
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "length"
    assert message.content == "" and message.model_extra["reasoning_content"]
