"""Incremental detokenisation, stop strings and the reasoning split, on the real SmolLM2 / R1 tokenizers."""

from __future__ import annotations

import pytest

from r1tune.serve.textstream import ReasoningSplitter, TextStream


def _stream_all(tokenizer, ids, stop=()):
    stream = TextStream(tokenizer, stop)
    pieces = [stream.push(t) for t in ids]
    pieces.append(stream.flush())
    return pieces, stream


@pytest.mark.parametrize("text", ["Hello, world! A blue mug.", "这款蓝色陶瓷杯，容量350毫升，适合办公室使用。", "emoji 🎉 ok"])
def test_deltas_concatenate_to_the_full_decode(smol_tokenizer, text):
    ids = smol_tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces, _ = _stream_all(smol_tokenizer, ids)
    assert "".join(pieces) == smol_tokenizer.decode(ids) == text
    assert all("\ufffd" not in p for p in pieces)  # never half a character


def test_stop_string_across_tokens_is_cut_and_never_sent(smol_tokenizer):
    ids = smol_tokenizer("The mug is blue. END of answer", add_special_tokens=False)["input_ids"]
    pieces, stream = _stream_all(smol_tokenizer, ids, stop=["END"])
    assert "".join(pieces) == "The mug is blue. "
    assert stream.stopped
    assert not any("E" in p for p in pieces)  # the held-back "E"/"EN" never leaked


def test_partial_stop_prefix_is_released_when_it_does_not_complete(smol_tokenizer):
    ids = smol_tokenizer("say EN then stop", add_special_tokens=False)["input_ids"]
    pieces, stream = _stream_all(smol_tokenizer, ids, stop=["END"])
    assert "".join(pieces) == "say EN then stop"
    assert not stream.stopped


def test_special_tokens_are_not_emitted(smol_tokenizer):
    ids = smol_tokenizer("hi", add_special_tokens=False)["input_ids"] + [smol_tokenizer.convert_tokens_to_ids("<|im_start|>")]
    pieces, _ = _stream_all(smol_tokenizer, ids)
    assert "".join(pieces) == "hi"


def test_reasoning_split_with_think_tag_split_across_deltas():
    splitter = ReasoningSplitter(think=True)
    out = []
    for delta in ["\nLet me ", "think.</th", "ink>\n\nThe ", "answer."]:
        out += splitter.feed(delta)
    out += splitter.flush()
    reasoning = "".join(t for c, t in out if c == "reasoning")
    content = "".join(t for c, t in out if c == "content")
    assert reasoning == "Let me think."
    assert content == "The answer."
    assert all("</" not in t for _, t in out)


def test_no_closing_tag_means_everything_is_reasoning():
    splitter = ReasoningSplitter(think=True)
    out = splitter.feed("still thinking <") + splitter.flush()
    assert [c for c, _ in out] == ["reasoning", "reasoning"]
    assert "".join(t for _, t in out) == "still thinking <"


def test_formats_without_think_send_everything_to_content():
    splitter = ReasoningSplitter(think=False)
    out = splitter.feed("a </think> b") + splitter.flush()
    assert out == [("content", "a </think> b")]
