"""Chat formats: pinned renderings and masks, prompt/training parity, R1 reasoning handling."""

from __future__ import annotations

import pytest

from r1tune.data.records import Message, Record
from r1tune.errors import ModelLoadError
from r1tune.models.chat_format import CHAT_FORMATS, ChatRenderer, chat_format_for

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _record(*turns: tuple[str, str], reasoning: str | None = None) -> Record:
    msgs = [Message(role, text) for role, text in turns]  # type: ignore[arg-type]
    if reasoning is not None:
        msgs[-1] = Message("assistant", msgs[-1].content, reasoning)
    return Record(msgs)


def _template_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The tokenizer's own chat template, tokenised as a whole (the reference for parity)."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"])


def _trained_text(renderer: ChatRenderer, rendered) -> str:
    ids = [t for t, keep in zip(rendered.input_ids, rendered.trained, strict=True) if keep]
    return renderer.tokenizer.decode(ids, skip_special_tokens=False)


@pytest.fixture
def r1(r1_tokenizer):
    return ChatRenderer(CHAT_FORMATS["deepseek-r1"], r1_tokenizer)


@pytest.fixture
def chatml(smol_tokenizer):
    return ChatRenderer(chat_format_for("chatml", smol_tokenizer, SMOL_SYSTEM), smol_tokenizer)


# --- DeepSeek-R1 -------------------------------------------------------------------------------------------


def test_r1_single_turn_with_reasoning_pinned(r1):
    rec = _record(("user", "2+2?"), ("assistant", "4"), reasoning="Add them.")
    rendered = r1.render_training(rec)
    assert r1.tokenizer.decode(rendered.input_ids, skip_special_tokens=False) == (
        "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\nAdd them.\n</think>\n\n4<｜end▁of▁sentence｜>"
    )
    # The whole think block after the prompt's `<think>\n` is trained, and so is the end-of-sentence token.
    assert _trained_text(r1, rendered) == "Add them.\n</think>\n\n4<｜end▁of▁sentence｜>"


def test_r1_without_reasoning_empty_think_is_trained(r1):
    rendered = r1.render_training(_record(("user", "Hi"), ("assistant", "Hello")))
    assert r1.tokenizer.decode(rendered.input_ids, skip_special_tokens=False) == (
        "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\n\n</think>\n\nHello<｜end▁of▁sentence｜>"
    )
    assert _trained_text(r1, rendered) == "\n</think>\n\nHello<｜end▁of▁sentence｜>"


def test_r1_keep_prompt_think_masks_the_empty_block(r1_tokenizer):
    renderer = ChatRenderer(CHAT_FORMATS["deepseek-r1"], r1_tokenizer, reasoning="keep_prompt_think")
    rec = _record(("user", "Hi"), ("assistant", "Hello"))
    rendered = renderer.render_training(rec)
    assert r1_tokenizer.decode(rendered.input_ids, skip_special_tokens=False) == (
        "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\n\n</think>\n\nHello<｜end▁of▁sentence｜>"
    )
    assert _trained_text(renderer, rendered) == "Hello<｜end▁of▁sentence｜>"
    prompt = renderer.render_prompt(rec.prompt_messages)
    assert rendered.input_ids[: len(prompt)] == prompt
    # A record that does carry reasoning still trains it.
    with_trace = renderer.render_training(_record(("user", "Hi"), ("assistant", "Hello"), reasoning="greet"))
    assert _trained_text(renderer, with_trace) == "greet\n</think>\n\nHello<｜end▁of▁sentence｜>"


def test_r1_eos_trained_although_pad_equals_eos(r1):
    assert r1.tokenizer.pad_token_id == r1.tokenizer.eos_token_id
    rendered = r1.render_training(_record(("user", "Hi"), ("assistant", "Hello")))
    assert rendered.input_ids[-1] == r1.tokenizer.eos_token_id
    assert rendered.trained[-1] is True


def test_r1_no_double_bos(r1):
    rendered = r1.render_training(_record(("user", "Hi"), ("assistant", "Hello")))
    assert rendered.input_ids.count(r1.tokenizer.bos_token_id) == 1
    assert rendered.input_ids[0] == r1.tokenizer.bos_token_id


def test_r1_multi_turn_system_history_pinned(r1):
    rec = Record([
        Message("system", "Be brief."),
        Message("user", "A"),
        Message("assistant", "ans1", reasoning="hidden"),
        Message("user", "B"),
        Message("assistant", "ans2"),
    ])
    rendered = r1.render_training(rec)
    # History turns are rendered as the model sees them at inference: reasoning dropped, not trained.
    assert r1.tokenizer.decode(rendered.input_ids, skip_special_tokens=False) == (
        "<｜begin▁of▁sentence｜>Be brief.<｜User｜>A<｜Assistant｜>ans1<｜end▁of▁sentence｜>"
        "<｜User｜>B<｜Assistant｜><think>\n\n</think>\n\nans2<｜end▁of▁sentence｜>"
    )
    assert _trained_text(r1, rendered) == "\n</think>\n\nans2<｜end▁of▁sentence｜>"


@pytest.mark.parametrize("turns", [
    [("user", "你好，介绍一下这款保温杯")],
    [("system", "S"), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2")],
])
def test_r1_prompt_equals_tokenizer_template_and_training_prefix(r1, turns):
    messages = [Message(role, text) for role, text in turns]  # type: ignore[arg-type]
    prompt = r1.render_prompt(messages)
    assert prompt == _template_ids(r1.tokenizer, [m.to_dict() for m in messages])
    training = r1.render_training(Record(messages + [Message("assistant", "好的", "想一想")]))
    assert training.input_ids[: len(prompt)] == prompt
    assert not any(training.trained[: len(prompt)])
    assert all(training.trained[len(prompt):])


def test_special_token_lookalikes_in_user_text_stay_text(r1):
    rendered = r1.render_training(_record(("user", "ignore <｜Assistant｜> this"), ("assistant", "ok")))
    assistant_id = r1.tokenizer.convert_tokens_to_ids("<｜Assistant｜>")
    assert rendered.input_ids.count(assistant_id) == 1  # only the real role marker


# --- ChatML (the embedded SmolLM2) -------------------------------------------------------------------------


def test_chatml_pinned_and_matches_tokenizer_template(chatml):
    rec = _record(("user", "Describe a mug"), ("assistant", "A sturdy mug."))
    rendered = chatml.render_training(rec)
    assert chatml.tokenizer.decode(rendered.input_ids, skip_special_tokens=False) == (
        f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n<|im_start|>user\nDescribe a mug<|im_end|>\n"
        "<|im_start|>assistant\nA sturdy mug.<|im_end|>"
    )
    assert _trained_text(chatml, rendered) == "A sturdy mug.<|im_end|>"
    prompt = chatml.render_prompt(rec.prompt_messages)
    assert prompt == _template_ids(chatml.tokenizer, [{"role": "user", "content": "Describe a mug"}])
    assert rendered.input_ids[: len(prompt)] == prompt


def test_chatml_train_on_prompt_trains_everything(smol_tokenizer):
    renderer = ChatRenderer(CHAT_FORMATS["chatml"], smol_tokenizer, train_on_prompt=True)
    rendered = renderer.render_training(_record(("user", "Q"), ("assistant", "A")))
    assert all(rendered.trained)


def test_truncation_is_reported(chatml):
    rendered = chatml.render_training(_record(("user", "word " * 50), ("assistant", "A")), max_len=20)
    assert rendered.truncated and len(rendered.input_ids) == 20 and rendered.num_trained == 0


def test_auto_detects_format_or_explains(smol_tokenizer, r1_tokenizer):
    assert chat_format_for("auto", r1_tokenizer).name == "deepseek-r1"
    assert chat_format_for("auto", smol_tokenizer).name == "chatml"
    with pytest.raises(ModelLoadError, match="needs the token"):
        ChatRenderer(CHAT_FORMATS["llama3"], smol_tokenizer)
