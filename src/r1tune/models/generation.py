"""Batched generation for evaluation and the CLI chat: left padding, greedy or sampled, stop tokens.

Prompts are sorted by length before batching so each batch pads little, and results come back in the
caller's order. Output is cut at the first stop token and split into reasoning and answer by the format.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from r1tune.models.chat_format import ChatRenderer, split_reasoning
from r1tune.models.precision import Precision, autocast

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class Generation:
    text: str
    reasoning: str | None
    answer: str
    num_tokens: int
    finish_reason: Literal["stop", "length"]
    seconds: float


def generate(
    model: PreTrainedModel,
    renderer: ChatRenderer,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    precision: Precision = "fp32",
    on_batch: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Generate a completion for each tokenised prompt; `temperature == 0` means greedy decoding."""
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    pad_id = renderer.tokenizer.pad_token_id
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [prompts[i] for i in idx]
        width = max(len(p) for p in batch)
        input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in batch])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(precision):
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                eos_token_id=renderer.stop_token_ids,
                pad_token_id=pad_id,
                use_cache=True,
                **sampling,
            )
        seconds = (time.perf_counter() - t0) / len(batch)
        for row, i in enumerate(idx):
            results[i] = _decode(out[row, width:].tolist(), renderer, seconds)
        if on_batch:
            on_batch(len(batch))
    return [r for r in results if r is not None]


def _decode(new_ids: list[int], renderer: ChatRenderer, seconds: float) -> Generation:
    stops = set(renderer.stop_token_ids)
    cut = next((k for k, t in enumerate(new_ids) if t in stops), None)
    finish: Literal["stop", "length"] = "stop" if cut is not None else "length"
    kept = new_ids[:cut] if cut is not None else new_ids
    text = renderer.tokenizer.decode(kept, skip_special_tokens=False)
    reasoning, answer = split_reasoning(text, renderer.fmt)
    return Generation(text, reasoning, answer, len(kept) + (1 if cut is not None else 0), finish, seconds)
