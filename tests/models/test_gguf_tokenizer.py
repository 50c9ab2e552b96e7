"""The R1 tokenizer rebuilt from its GGUF's metadata gives DeepSeek-R1-Distill's real ids (figures from the
GGUF's own metadata, see the shared wave-2 facts), and a file that is not GGUF fails by name."""

from __future__ import annotations

import pytest

from r1tune.errors import ModelLoadError
from r1tune.models.gguf_tokenizer import read_gguf_metadata, tokenizer_from_gguf


def test_special_tokens_are_atomic_and_keep_their_real_ids(r1_tokenizer):
    ids = r1_tokenizer.convert_tokens_to_ids(
        ["<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜begin▁of▁sentence｜>", "<think>", "</think>"])
    assert ids == [151643, 151644, 151645, 151646, 151648, 151649]
    assert r1_tokenizer("<｜User｜>hi<think>", add_special_tokens=False).input_ids == [151644, 6023, 151648]
    assert r1_tokenizer(" 你好", add_special_tokens=False).input_ids == [220, 108386]
    assert r1_tokenizer.bos_token_id == 151646 and r1_tokenizer.eos_token_id == 151643


def test_text_round_trips_through_byte_level_bpe(r1_tokenizer):
    text = "Refund policy: 30 days.\n\n退货政策：30天。 <think>"
    assert r1_tokenizer.decode(r1_tokenizer(text, add_special_tokens=False).input_ids) == text


def test_metadata_of_the_packaged_shard():
    import importlib
    from pathlib import Path

    from r1tune.models.gguf_tokenizer import R1_SHARD_PACKAGE

    shard = Path(importlib.import_module(R1_SHARD_PACKAGE).__file__).parent / "model_part_0000"
    meta = read_gguf_metadata(shard)
    assert meta["general.architecture"] == "qwen2" and meta["qwen2.block_count"] == 28
    assert len(meta["tokenizer.ggml.tokens"]) == 152064 and meta["tokenizer.ggml.bos_token_id"] == 151646


def test_a_file_that_is_not_gguf_is_named(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelLoadError, match="model.gguf is not a GGUF file"):
        tokenizer_from_gguf(bad)
