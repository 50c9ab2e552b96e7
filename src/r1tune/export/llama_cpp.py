"""llama.cpp's own code, through llama-cpp-python (extra `llama-cpp`): k-quants, which the `gguf` library
cannot write (it quantises to q8_0 and q4_0 only), and reading a GGUF back the way llama.cpp and Ollama
will run it, for `export --verify`.
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any

from r1tune.errors import R1TuneError

K_QUANTS = ("q4_k_m", "q5_k_m", "q6_k")


def check_llama_cpp(what: str) -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        raise R1TuneError(f"{what} needs llama-cpp-python, which is not installed",
                          hint="pip install 'r1tune[llama-cpp]' (it builds llama.cpp; a C++ compiler is needed)") from e


def quantize(source: Path, target: Path, quant: str) -> None:
    """`source` (an f16 GGUF) → `target` in the k-quant `quant`, with llama.cpp's quantiser."""
    import llama_cpp

    check_llama_cpp(f"--quant {quant}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    failed = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if failed or not target.is_file():
        raise R1TuneError(f"llama.cpp could not quantise {source.name} to {quant} (code {failed})")


def read_back(gguf_file: Path, examples: list[Any], prompts: list[list[int]], max_new_tokens: int,
              stop_ids: list[int]) -> dict[str, Any]:
    """Answer perplexity over the examples' trained tokens and greedy answers to `prompts`, computed by
    llama.cpp on the file itself: the model an Ollama or llama-server user gets."""
    import llama_cpp

    longest = max(len(e.input_ids) for e in examples) if examples else 0
    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=max(longest, max(map(len, prompts), default=0)
                                                              + max_new_tokens) + 8,
                          logits_all=True, verbose=False, seed=0)
    nll, tokens = 0.0, 0
    for example in examples:
        llm.reset()
        llm.eval(example.input_ids)
        for position in range(1, len(example.input_ids)):
            if example.trained[position]:
                logits = llm.scores[position - 1]
                nll += float(_logsumexp(logits) - logits[example.input_ids[position]])
                tokens += 1
    answers = [_greedy(llm, prompt, max_new_tokens, stop_ids) for prompt in prompts]
    return {"perplexity": math.exp(nll / tokens) if tokens else float("nan"), "answers": answers}


def _greedy(llm: Any, prompt: list[int], max_new_tokens: int, stop_ids: list[int]) -> str:
    llm.reset()
    out: list[int] = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        if token in stop_ids or len(out) >= max_new_tokens:
            break
        out.append(token)
    return llm.detokenize(out).decode("utf-8", errors="replace")


def _logsumexp(values: Any) -> float:
    import numpy as np

    top = float(np.max(values))
    return top + float(np.log(np.sum(np.exp(values - top))))
