"""GGUF export of tiny Llama and Qwen2 models: read back by transformers' GGUF loader (dequantised) with the
same predictions, metadata checked with the `gguf` reader, and clear errors before any work."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from r1tune.errors import R1TuneError
from r1tune.export.gguf_writer import check_gguf_export, write_gguf

IDS = torch.tensor([[1, 20, 300, 4000, 50, 7, 88, 999, 12000, 49000]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


# Weights only: the R1 tokenizer's metadata is checked below with the `gguf` reader.
@pytest.mark.parametrize("arch_fixture", ["tiny_llama_dir", "tiny_qwen_dir"])
@pytest.mark.parametrize(("quant", "max_diff", "same_next"), [("f16", 0.05, 1.0), ("q8_0", 1.0, 0.8)])
def test_gguf_reads_back_to_the_same_predictions(arch_fixture, quant, max_diff, same_next, request, tmp_path):
    from transformers import AutoModelForCausalLM

    source = request.getfixturevalue(arch_fixture)
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    write_gguf(folder, folder / f"model-{quant}.gguf", quant)
    reference = _logits(AutoModelForCausalLM.from_pretrained(folder))
    back = _logits(AutoModelForCausalLM.from_pretrained(folder, gguf_file=f"model-{quant}.gguf"))
    assert float((reference - back).abs().max()) < max_diff
    # the same next token (a random model's near ties may flip under 8-bit rounding)
    assert float((reference.argmax(-1) == back.argmax(-1)).float().mean()) >= same_next


def test_metadata_holds_the_tokenizer_special_tokens_and_chat_template(tiny_qwen_r1_dir, tmp_path):
    import gguf
    from transformers import AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_qwen_r1_dir, folder)
    path = write_gguf(folder, folder / "model-f16.gguf", "f16")
    reader = gguf.GGUFReader(path)

    def field(name):
        part = reader.fields[name]
        return [part.contents(i) for i in range(len(part.data))] if len(part.data) > 1 else part.contents()

    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = tokenizer.get_vocab()
    tokens, types = reader.fields["tokenizer.ggml.tokens"], reader.fields["tokenizer.ggml.token_type"]
    user, think = vocab["<｜User｜>"], vocab["<think>"]
    assert tokens.contents(user) == "<｜User｜>" and tokens.contents(think) == "<think>"
    assert types.contents(user) == gguf.TokenType.CONTROL and types.contents(think) == gguf.TokenType.USER_DEFINED
    assert field("tokenizer.ggml.eos_token_id") == vocab["<｜end▁of▁sentence｜>"]
    assert field("tokenizer.ggml.bos_token_id") == vocab["<｜begin▁of▁sentence｜>"]
    assert field("tokenizer.chat_template") == tokenizer.chat_template
    assert field("general.architecture") == "qwen2"
    assert field("general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    config = json.loads((folder / "config.json").read_text())
    assert np.isclose(field("qwen2.rope.freq_base"), config.get("rope_theta") or config["rope_parameters"]["rope_theta"])


def test_unsupported_models_and_quants_fail_before_any_work(tiny_llama_dir, tmp_path):
    with pytest.raises(R1TuneError, match="--quant 'q4_k_m' is not supported"):
        check_gguf_export(tiny_llama_dir, "q4_k_m")
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(R1TuneError, match="GGUF export supports LlamaForCausalLM, Qwen2ForCausalLM"):
        check_gguf_export(other, "f16")
