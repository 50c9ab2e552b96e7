"""Tool calls: `<tool_call>` blocks parsed into OpenAI tool_calls (whole or streamed, split anywhere), tool
turns rendered into the conversation, forced calls whose arguments always fit the schema, and 400 where the
chat format has no tool convention."""

from __future__ import annotations

import json
import random

import httpx
import jsonschema
import pytest
from serve_helpers import MODEL_FORMATS, serve_formats_model, think_close_bias

from r1tune.serve.protocol import ApiError, ChatCompletionRequest, FunctionSpec
from r1tune.serve.tools import ToolCallStream, conversation, offered_functions, parse_tool_calls

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                            "unit": {"enum": ["C", "F"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "track_order", "parameters": {
             "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}]
FUNCTIONS = [FunctionSpec(**t["function"]) for t in TOOLS]


def test_blocks_become_tool_calls_and_anything_else_stays_text():
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海", "unit": "C"}}\n'
            '</tool_call>\n<tool_call>{"name": "track_order", "arguments": "{\\"order_id\\": 7}"}</tool_call>'
            '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call><tool_call>not json</tool_call>')
    content, calls = parse_tool_calls(text, FUNCTIONS)
    assert [c["function"]["name"] for c in calls] == ["get_weather", "track_order"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "上海", "unit": "C"}
    assert json.loads(calls[1]["function"]["arguments"]) == {"order_id": 7}
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)
    assert content.startswith("Let me check.") and "rm_rf" in content and "not json" in content


def test_streamed_text_split_anywhere_gives_the_same_calls_and_text():
    text = ('Sure <b>now</b>: <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "F"}}'
            '\n</tool_call> done')
    whole_content, whole_calls = parse_tool_calls(text, FUNCTIONS)
    rng = random.Random(3)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, 12)))
        stream = ToolCallStream(FUNCTIONS)
        sent = "".join(stream.feed(text[a:b]) for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True))
        rest, calls = stream.finish()
        assert sent + rest == whole_content
        assert [c["function"] for c in calls] == [c["function"] for c in whole_calls]
    plain = ToolCallStream(FUNCTIONS)
    assert plain.feed("no calls <here") + plain.feed(" at all") + plain.finish()[0] == "no calls <here at all"


def _request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                 **fields})


def test_tool_turns_are_written_into_the_conversation():
    body = _request(tools=TOOLS, messages=[
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": '{"city": "Paris", "unit": "C"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}])
    messages = conversation(body, offered_functions(body, "chatml"))
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0].content.startswith("You are a shop assistant.\n\n# Tools") and '"get_weather"' in messages[0].content
    assert messages[2].content == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n</tool_call>'
    assert messages[3].content == "<tool_response>\n18 C, sunny\n</tool_response>"
    assert conversation(_request(tools=TOOLS, tool_choice="none"), [])[0].role == "user"  # no tools offered


def test_formats_without_a_tool_convention_refuse_tools():
    with pytest.raises(ApiError) as err:
        offered_functions(_request(tools=TOOLS), "llama3")
    assert err.value.status == 400 and err.value.code == "unsupported_parameter" and err.value.param == "tools"
    assert offered_functions(_request(tools=TOOLS, tool_choice="none"), "llama3") == []


@pytest.fixture(scope="module", params=MODEL_FORMATS)
def server(request, tmp_path_factory):
    with serve_formats_model(request, tmp_path_factory, "serve:\n  default_max_tokens: 160\n  max_tokens_limit: 400\n") as served:
        yield served


def _body(server, **fields) -> dict:
    bias = think_close_bias(server)
    return {"model": server.runtime.base_id, "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": TOOLS, "max_tokens": 200, "logit_bias": bias, **fields}


def test_a_required_call_always_fits_its_function_schema(server):
    for seed in range(3):
        answer = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                            json=_body(server, tool_choice="required", temperature=1.0, seed=seed)).json()
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "tool_calls", choice
        (call,) = choice["message"]["tool_calls"]
        schema = WEATHER if call["function"]["name"] == "get_weather" else TOOLS[1]["function"]["parameters"]
        jsonschema.validate(json.loads(call["function"]["arguments"]), schema)


def test_a_named_call_streams_as_a_tool_call_delta(server):
    body = _body(server, tool_choice={"type": "function", "function": {"name": "track_order"}}, stream=True)
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=120) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    calls = [d["tool_calls"][0] for c in chunks for ch in c["choices"] for d in [ch["delta"]] if "tool_calls" in d]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["function"]["name"] == "track_order"
    assert isinstance(json.loads(calls[0]["function"]["arguments"])["order_id"], int)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_conversation_with_tool_results_is_answered(server):
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
                    "name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "18 C"}]
    answer = httpx.post(server.url + "/v1/chat/completions", json=_body(server, messages=messages, max_tokens=8),
                        timeout=120)
    assert answer.status_code == 200 and answer.json()["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


@pytest.mark.parametrize("fields, param", [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, None),
    ({"tool_choice": "required", "tools": None}, None),
    ({"tools": [TOOLS[0], TOOLS[0]]}, None),
    ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
])
def test_malformed_tool_requests_are_400(server, fields, param):
    response = httpx.post(server.url + "/v1/chat/completions", json=_body(server, **fields), timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
