"""A Hugging Face Llama or Qwen2 folder (a merged export) as one GGUF file for llama.cpp and Ollama.

Written with the `gguf` library: tensor names come from its per-architecture name maps, quantisation from
its numpy quantisers (f16 and q8_0; norms and biases stay f32 as llama.cpp keeps them). Llama's query and
key projections are stored with llama.cpp's rotary row order (rows of each head interleaved), which is what
llama.cpp and transformers' GGUF reader expect; Qwen2 keeps the Hugging Face order. The tokenizer (tokens,
types, merges, special ids) and the chat template are embedded, so the file alone is a usable model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from r1tune.errors import R1TuneError

ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
QUANTS = ("f16", "q8_0")
SPOOL_IN_MEMORY = 256 * 1024 * 1024  # tensor bytes kept in memory before they spill into the spool file
FILE_TYPES = {"f16": 1, "q8_0": 7}  # gguf.LlamaFileType MOSTLY_F16 / MOSTLY_Q8_0 (`general.file_type`)


def check_gguf_export(model_dir: Path, quant: str) -> str:
    """The GGUF architecture name of a model folder; a clear error before any work otherwise."""
    import json

    if quant not in QUANTS:
        raise R1TuneError(f"--quant {quant!r} is not supported for GGUF", hint=f"use one of {', '.join(QUANTS)}")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    names = [a for a in config.get("architectures") or [] if a in ARCHITECTURES]
    if not names:
        raise R1TuneError(f"GGUF export supports {', '.join(ARCHITECTURES)}; this model is "
                          f"{config.get('architectures')}", hint="export --format merged and convert it with llama.cpp")
    return ARCHITECTURES[names[0]]


def write_gguf(model_dir: Path, out_file: Path, quant: str, chat_template: str | None = None,
               tensors: Iterable[tuple[str, Any]] | None = None) -> Path:
    """Convert the model in `model_dir` into `out_file`: its config and tokenizer, and its safetensors
    weights, or `tensors` (name, torch tensor) as they come when given (a merge that writes no folder)."""
    import gguf
    from transformers import AutoConfig, AutoTokenizer

    arch = check_gguf_export(model_dir, quant)
    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    writer = gguf.GGUFWriter(str(out_file), arch, use_temp_file=True)
    # Tensors wait on disk beside the output, not in memory, until the header is written: a 70B base in f16
    # would otherwise hold 140 GB of RAM. (The writer makes its own spool in the system temp folder only
    # when it has none.)
    writer.temp_file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=out_file.parent)
    _write_hparams(writer, config)
    writer.add_file_type(FILE_TYPES[quant])
    _write_tokenizer(writer, tokenizer, chat_template, config.vocab_size)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2,
                                        config.num_hidden_layers)
    for name, tensor in tensors if tensors is not None else folder_tensors(model_dir):
        _add_tensor(writer, name_map, name, tensor.float().numpy(), config, arch, quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def folder_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """The folder's safetensors weights, one tensor in memory at a time (torch reads bf16; numpy cannot)."""
    from safetensors import safe_open

    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), "pt") as weights:
            for name in weights.keys():  # noqa: SIM118
                yield name, weights.get_tensor(name)


def _write_hparams(writer: Any, config: Any) -> None:
    writer.add_vocab_size(config.vocab_size)  # else readers count tokens, and R1's GGUF tokenizer adds two
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)


def _rope_theta(config: Any) -> float:
    """transformers 5 keeps it in `rope_parameters`; older configs have `rope_theta`. A wrong value is not an
    error anywhere, only a worse model (SmolLM2's 100,000 written as 10,000 cost +12% perplexity)."""
    parameters = getattr(config, "rope_parameters", None) or {}
    theta = parameters.get("rope_theta") if isinstance(parameters, dict) else None
    theta = theta or getattr(config, "rope_theta", None)
    if not theta:
        raise R1TuneError("GGUF export: the model config gives no rope_theta")
    if isinstance(parameters, dict) and parameters.get("rope_type", "default") != "default":
        raise R1TuneError(f"GGUF export: rope scaling {parameters.get('rope_type')!r} is not supported yet")
    return float(theta)


def _write_tokenizer(writer: Any, tokenizer: Any, chat_template: str | None, size: int) -> None:
    """BPE vocabulary (GPT-2 style, as Llama-3/SmolLM2/Qwen2 tokenizers are), merges and special ids, as
    many tokens as the embedding has rows (llama.cpp requires it): unused rows get `[PAD<i>]`, and a
    tokenizer's ids past the embedding (e.g. an unk token a tokenizer class adds on loading) are left out,
    since the model cannot read them."""
    import json

    import gguf

    vocab = {token: index for token, index in tokenizer.get_vocab().items() if index < size}
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    added = {t.content: t.special for t in tokenizer.added_tokens_decoder.values()}
    for token, index in vocab.items():
        tokens[index] = token
        types[index] = gguf.TokenType.NORMAL if token not in added else \
            gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED  # <think> is text-like
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for kind, token in (("bos", tokenizer.bos_token), ("eos", tokenizer.eos_token), ("pad", tokenizer.pad_token)):
        if token is not None and token in vocab:
            getattr(writer, f"add_{kind}_token_id")(vocab[token])
    writer.add_add_bos_token(False)  # r1tune's formats (and the chat templates) write BOS in the text
    writer.add_add_eos_token(False)
    template = chat_template or tokenizer.chat_template
    if template:
        writer.add_chat_template(template)


def _add_tensor(writer: Any, name_map: Any, name: str, data: np.ndarray, config: Any, arch: str, quant: str) -> None:
    import gguf

    target = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
    if target is None:
        raise R1TuneError(f"GGUF export: no GGUF name for tensor {name!r}")
    if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
        heads = config.num_attention_heads if "q_proj" in name else config.num_key_value_heads
        data = _rotary_rows(data, heads)
    if data.ndim == 1:
        writer.add_tensor(target, data.astype(np.float32))
    elif quant == "q8_0" and data.shape[-1] % 32 == 0:
        quantised = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(target, quantised, raw_shape=quantised.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        writer.add_tensor(target, data.astype(np.float16))


def _rotary_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotate-half row order to llama.cpp's interleaved one, per head."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))
