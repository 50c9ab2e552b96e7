"""`response_format` by grammar-constrained decoding: every finished answer parses and follows its schema,
on a random model that on its own writes anything; reasoning models think first, then answer in JSON."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from serve_helpers import MODEL_FORMATS, serve_formats_model, think_close_bias

pytest.importorskip("xgrammar", reason="xgrammar is installed by `make venv`; structured output needs it")

PRODUCT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "price": {"type": "number"},
        "in_stock": {"type": "boolean"},
        "colour": {"enum": ["red", "blue", "green"]},
    },
    "required": ["name", "price", "in_stock", "colour"],
    "additionalProperties": False,
}
PROMPTS = ["Describe the blue mug as JSON.", "Give me the red scarf's details.", "Is the lamp in stock?",
           "商品信息：蓝色杯子", "List the green vase."]


@pytest.fixture(scope="module", params=MODEL_FORMATS)
def server(request, tmp_path_factory):
    with serve_formats_model(request, tmp_path_factory, "serve:\n  default_max_tokens: 120\n  max_tokens_limit: 400\n") as served:
        served.client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        yield served


def _ask(server, prompt: str, response_format: dict, logit_bias: dict | None = None, **extra):
    return server.client.chat.completions.create(
        model=server.runtime.base_id, messages=[{"role": "user", "content": prompt}],
        response_format=response_format, max_tokens=300, logit_bias={**think_close_bias(server), **(logit_bias or {})},
        **extra)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_every_answer_parses_and_validates_against_the_schema(server, temperature):
    fmt = {"type": "json_schema", "json_schema": {"name": "product", "schema": PRODUCT, "strict": True}}
    for prompt in PROMPTS:
        answer = _ask(server, prompt, fmt, temperature=temperature, seed=3)
        choice = answer.choices[0]
        assert choice.finish_reason == "stop", (choice.message.content, answer.usage)
        jsonschema.validate(json.loads(choice.message.content), PRODUCT)


def test_json_object_gives_an_object(server):
    # An object may hold anything, so a random model rarely ends one: favour the closing characters, as a
    # trained model's short answers do; the grammar decides where they may stand.
    tokenizer = server.runtime.loaded.tokenizer
    closing = {str(tokenizer.convert_tokens_to_ids(t)): 6 for t in ('"', "}")}
    answer = _ask(server, PROMPTS[0], {"type": "json_object"}, logit_bias=closing)
    assert answer.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(answer.choices[0].message.content), dict)


def test_without_a_response_format_the_random_model_writes_no_json(server):
    answer = server.client.chat.completions.create(model=server.runtime.base_id, max_tokens=30,
                                                   messages=[{"role": "user", "content": PROMPTS[0]}])
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.choices[0].message.content)


def test_reasoning_stays_free_text_until_think_closes(server):
    if not server.think:
        pytest.skip("ChatML model: no reasoning phase")
    fmt = {"type": "json_schema", "json_schema": {"name": "product", "schema": PRODUCT}}
    body = {"model": server.runtime.base_id, "messages": [{"role": "user", "content": PROMPTS[0]}],
            "response_format": fmt, "max_tokens": 40}
    answer = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120).json()["choices"][0]
    # unbiased, the random model never closes its reasoning: 40 tokens of unconstrained text, no answer yet
    assert answer["finish_reason"] == "length" and answer["message"]["content"] == ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer["message"]["reasoning_content"])


@pytest.mark.parametrize("response_format, param", [
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format"),
    ({"type": "json_object", "json_schema": {"name": "x", "schema": {}}}, "response_format"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name"),
])
def test_malformed_response_formats_are_400_naming_the_field(server, response_format, param):
    body = {"model": server.runtime.base_id, "messages": [{"role": "user", "content": "hi"}],
            "response_format": response_format}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
