"""The one decoder: incremental detokenisation, stop strings and the reasoning split (first `</think>`),
the same for every split of the same output into deltas."""

from __future__ import annotations

import pytest

from r1tune.models.decoding import ReasoningSplitter, TextStream, decode_output, split_reasoning


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


@pytest.mark.parametrize("text, expected", [
    ("step 1\n</think>\n\nThe answer.", ("step 1", "The answer.")),
    ("<think>\nstep\n</think>\n\nDone", ("step", "Done")),  # a model that writes the open tag anyway
    ("still thinking, cut off", ("still thinking, cut off", "")),
    ("a</think>b</think>\n\nfinal", ("a", "b</think>\n\nfinal")),  # the first close tag ends the reasoning
    ("</think>direct", ("", "direct")),
    ("<thin", ("<thin", "")),
])
def test_split_reasoning_r1(text, expected):
    assert split_reasoning(text, think=True) == expected


def test_split_reasoning_plain_format_has_no_reasoning():
    assert split_reasoning("  just text </think> x", think=False) == (None, "just text </think> x")


ALPHABET = ["<", "/", "t", "h", "i", "n", "k", ">", "<think>", "</think>", "</th", "ink>", " ", "\n", "答", "a", "."]


@pytest.mark.parametrize("think", [True, False])
def test_every_split_into_deltas_gives_the_whole_text_split(think):
    """Property test: random outputs built from tag fragments, whitespace and text, cut at every possible
    set of points (random subsets for longer texts), split like the whole text."""
    import random

    rng = random.Random(7)
    for _ in range(400):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
        expected = split_reasoning(text, think)
        for _ in range(12):
            cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, max(0, len(text) - 1)))) if len(text) > 1 else []
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            splitter = ReasoningSplitter(think)
            parts = [part for piece in pieces for part in splitter.feed(piece)] + splitter.flush()
            reasoning = "".join(t for c, t in parts if c == "reasoning")
            content = "".join(t for c, t in parts if c == "content")
            assert ((reasoning if think else None), content) == expected, (text, pieces)


def test_decode_output_stops_at_stop_tokens_and_strings(smol_tokenizer):
    ids = smol_tokenizer("The blue mug. END more", add_special_tokens=False)["input_ids"]
    eos = smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    by_string = decode_output(smol_tokenizer, ids, False, [eos], ["END"])
    assert (by_string.answer, by_string.finish_reason) == ("The blue mug. ", "stop")
    by_token = decode_output(smol_tokenizer, ids[:3] + [eos] + ids[3:], False, [eos])
    assert by_token.finish_reason == "stop" and by_token.num_tokens == 4
    assert decode_output(smol_tokenizer, ids, False, [eos]).finish_reason == "length"


def test_decode_output_on_real_r1_ids_splits_like_the_server(r1_tokenizer):
    text = "Let me think about the mug.\n</think>\n\n这是蓝色杯子。"
    ids = r1_tokenizer(text, add_special_tokens=False)["input_ids"]
    out = decode_output(r1_tokenizer, ids, True, [r1_tokenizer.eos_token_id])
    assert (out.reasoning, out.answer) == ("Let me think about the mug.", "这是蓝色杯子。")
