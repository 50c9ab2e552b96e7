"""Every assistant turn can learn: a ShareGPT record with a function call and a tool result, read through
the real reader, trains the tool-call turn and the final answer (R1 and ChatML), and only the last turn
with `mask_history`; the unset default follows the format. Evaluation scores final answers only."""

from __future__ import annotations

import json

import pytest

from r1tune.config import SourceConfig
from r1tune.data import Quarantine, read_source
from r1tune.models.chat_format import CHAT_FORMATS, ChatRenderer, chat_format_for

SHAREGPT = {
    "conversations": [
        {"from": "human", "value": "What is the balance of account 42?"},
        {"from": "function_call", "value": json.dumps({"name": "get_balance", "arguments": {"account": 42}})},
        {"from": "observation", "value": json.dumps({"balance": 1250.5})},
        {"from": "gpt", "value": "Account 42 holds 1,250.50 yuan."},
    ],
    "tools": json.dumps([{"name": "get_balance", "parameters": {"account": "integer"}}]),
}
CALL = '<tool_call>\n{"name": "get_balance", "arguments": {"account": 42}}\n</tool_call>'


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(SHAREGPT) + "\n", encoding="utf-8")
    records = list(read_source(SourceConfig(path=path, format="sharegpt"), Quarantine()))
    assert len(records) == 1 and records[0].messages[-3].content == CALL
    return records[0]


def _trained(renderer: ChatRenderer, record) -> str:
    rendered = renderer.render_training(record)
    ids = [t for t, keep in zip(rendered.input_ids, rendered.trained, strict=True) if keep]
    return renderer.tokenizer.decode(ids, skip_special_tokens=False)


def test_chatml_trains_the_tool_call_and_the_answer(record, smol_tokenizer):
    fmt = chat_format_for("chatml", smol_tokenizer)
    every = ChatRenderer(fmt, smol_tokenizer, mask_history=False)
    assert _trained(every, record) == f"{CALL}<|im_end|>Account 42 holds 1,250.50 yuan.<|im_end|>"
    last = ChatRenderer(fmt, smol_tokenizer, mask_history=True)
    assert _trained(last, record) == "Account 42 holds 1,250.50 yuan.<|im_end|>"
    assert ChatRenderer(fmt, smol_tokenizer, mask_history=None).mask_history is False  # unset: every turn
    assert every.final_answer_only().render_training(record).trained == last.render_training(record).trained


def test_r1_trains_every_turn_when_asked_and_only_the_last_by_default(record, r1_tokenizer):
    fmt = CHAT_FORMATS["deepseek-r1"]
    every = ChatRenderer(fmt, r1_tokenizer, mask_history=False)
    assert _trained(every, record) == (
        f"{CALL}<｜end▁of▁sentence｜>\n</think>\n\nAccount 42 holds 1,250.50 yuan.<｜end▁of▁sentence｜>")
    default = ChatRenderer(fmt, r1_tokenizer, mask_history=None)
    assert default.mask_history is True  # history turns carry no reasoning: training them unteaches thinking
    assert _trained(default, record) == "\n</think>\n\nAccount 42 holds 1,250.50 yuan.<｜end▁of▁sentence｜>"
    # the rendered ids are the same either way: only the mask differs
    assert every.render_training(record).input_ids == default.render_training(record).input_ids
