"""`response_format: json_schema` on the real embedded SmolLM2-135M: on a 20-prompt set every answer parses
and validates against the schema (the issue's acceptance figure), through the server's engine and runtime."""

from __future__ import annotations

import json
import threading

import jsonschema
import pytest
from helpers import write_project

pytestmark = pytest.mark.integration
pytest.importorskip("xgrammar", reason="xgrammar is installed by `make venv`")

SCHEMA = {
    "type": "object",
    "properties": {
        "product": {"type": "string", "maxLength": 40},
        "category": {"enum": ["kitchen", "clothing", "home", "garden", "electronics"]},
        "price_eur": {"type": "number", "minimum": 0},
        "features": {"type": "array", "items": {"type": "string", "maxLength": 30}, "minItems": 1, "maxItems": 3},
        "in_stock": {"type": "boolean"},
    },
    "required": ["product", "category", "price_eur", "features", "in_stock"],
    "additionalProperties": False,
}
ITEMS = ["blue ceramic mug", "wool scarf", "brass desk lamp", "leather bag", "steel kettle", "linen pillow",
         "oak chair", "glass vase", "garden hose", "bluetooth speaker", "蓝色陶瓷杯", "羊毛围巾", "cotton towel",
         "rain jacket", "plant pot", "phone charger", "cast iron pan", "reading lamp", "silk tie", "bird feeder"]


def test_twenty_json_schema_answers_all_parse_and_validate(tmp_path):
    from r1tune.configfile import load_config
    from r1tune.data import Message
    from r1tune.models.loading import ensure_embedded_cache
    from r1tune.models.presets import presets
    from r1tune.serve import ServeTarget, build_runtime
    from r1tune.serve.engine import EngineRequest, Finished, SamplingParams, TextDelta
    from r1tune.serve.protocol import ResponseFormat

    model_dir = ensure_embedded_cache(presets()["smollm2-135m-instruct"])
    runtime = build_runtime(ServeTarget(load_config(write_project(tmp_path, model_dir, extra="serve: {log_completions: false}\n"))))
    grammar = runtime.structured.compile(ResponseFormat.model_validate(
        {"type": "json_schema", "json_schema": {"name": "product_card", "schema": SCHEMA}}))
    results: dict[int, dict] = {i: {"text": ""} for i in range(len(ITEMS))}
    done = threading.Semaphore(0)

    def collector(i: int):
        def emit(event) -> None:
            if isinstance(event, TextDelta):
                results[i]["text"] += event.text
            elif isinstance(event, Finished):
                results[i]["finished"] = event
                done.release()
        return emit

    runtime.start()
    try:
        for i, item in enumerate(ITEMS):
            prompt = runtime.loaded.renderer.render_prompt(
                [Message("user", f"Return the product card of our {item} as JSON.")])
            runtime.engine.submit(EngineRequest(prompt, SamplingParams(max_tokens=200, grammar=grammar), collector(i)))
        for _ in ITEMS:
            assert done.acquire(timeout=300)
    finally:
        runtime.close()
    for i, result in results.items():
        assert result["finished"].reason == "stop", (ITEMS[i], result)
        jsonschema.validate(json.loads(result["text"]), SCHEMA)
    assert len({r["text"] for r in results.values()}) > 10  # real answers, not one canned object
