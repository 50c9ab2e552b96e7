"""The Jinja chat template written for vLLM renders, through transformers' own chat-template engine, the
exact text r1tune renders: with and without a default system prompt, with a client's system message, and
with the generation prompt only when asked."""

from __future__ import annotations

import pytest

from r1tune.data.records import Message
from r1tune.export.templates import jinja_template
from r1tune.models.chat_format import ChatRenderer, chat_format_for

TWO_TURNS = [Message("user", "Can I return shoes after 20 days?"), Message("assistant", "Yes, within 30 days."),
             Message("user", "退货运费谁付？")]
WITH_SYSTEM = [Message("system", "Answer in one line."), *TWO_TURNS]


@pytest.mark.parametrize(("fmt_name", "tokenizer_fixture", "system"), [
    ("deepseek-r1", "r1_tokenizer", None),
    ("chatml", "smol_tokenizer", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    ("chatml", "smol_tokenizer", None),
    ("chatml-think", "smol_tokenizer", None),
])
@pytest.mark.parametrize("conversation", [TWO_TURNS, WITH_SYSTEM], ids=["two-turns", "client-system"])
def test_jinja_template_renders_what_r1tune_renders(fmt_name, tokenizer_fixture, system, conversation, request):
    tokenizer = request.getfixturevalue(tokenizer_fixture)
    renderer = ChatRenderer(chat_format_for(fmt_name, tokenizer, system), tokenizer)
    template = jinja_template(renderer)
    messages = [{"role": m.role, "content": m.content} for m in conversation]
    rendered = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)
    assert rendered == renderer.prompt_text(conversation)
    history = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)
    assert history + renderer.generation_prompt() == rendered
