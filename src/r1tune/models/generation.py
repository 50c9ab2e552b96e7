"""Batched generation for evaluation and the CLI chat: left padding, greedy or sampled, stop tokens.

Prompts are sorted by length before batching so each batch pads little, and results come back in the
caller's order. Output is cut at the first stop token (or stop string) and split into reasoning and answer
by the format. A streamer time-stamps every decoding step, so each answer knows its time to first token
and its own finish time inside the batch (not just the batch's average).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from r1tune.models.chat_format import ChatRenderer
from r1tune.models.decoding import decode_output
from r1tune.models.device import model_device
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
    seconds: float  # the batch's wall time divided by its size (amortised cost per answer)
    first_token_seconds: float = 0.0  # from the batch's start to its first generated token (prefill)
    finish_seconds: float = 0.0  # from the batch's start to this answer's last token


class _StepClock:
    """A transformers streamer that only records when each step's tokens arrive: `put` is called once
    with the prompt and then once per decoding step, for the whole batch at a time."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass

    def at_token(self, t0: float, n: int) -> float:
        """Seconds from `t0` until the step that produced token number `n` (1-based)."""
        steps = self.stamps[1:]  # stamps[0] is the prompt
        if not steps or n <= 0:
            return 0.0
        return steps[min(n, len(steps)) - 1] - t0


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
    stop_strings: Sequence[str] = (),
    seed: int | None = None,
) -> list[Generation]:
    """Generate a completion for each tokenised prompt; `temperature == 0` means greedy decoding.
    `seed` makes sampling reproducible; `stop_strings` end an answer (the string itself is cut off)."""
    import torch

    from r1tune.models.packing import packed_for_autocast

    if seed is not None:
        torch.manual_seed(seed)
    stops = [s for s in stop_strings if s]
    sampling = _sampling_kwargs(temperature, top_p, stops, renderer)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    model.eval()
    device = model_device(model)
    # bf16 decoding on packed weight copies: the same tokens as plain autocast, made faster (models/packing.py)
    with packed_for_autocast(model, enabled=precision == "bf16" and device.type == "cpu"):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = _generate_batch(model, renderer, [prompts[i] for i in idx], max_new_tokens, precision,
                                    sampling, stops)
            for i, gen in zip(idx, batch, strict=True):
                results[i] = gen
            if on_batch:
                on_batch(len(idx))
    return [r for r in results if r is not None]


def _sampling_kwargs(temperature: float, top_p: float, stops: list[str], renderer: ChatRenderer) -> dict[str, Any]:
    """`generate`'s decoding arguments: greedy at temperature 0 (transformers' sampling defaults cleared)."""
    sampling: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
    if stops:
        sampling.update(stop_strings=stops, tokenizer=renderer.tokenizer)
    return sampling


def _generate_batch(model: PreTrainedModel, renderer: ChatRenderer, batch: list[list[int]], max_new_tokens: int,
                    precision: Precision, sampling: dict[str, Any], stops: list[str]) -> list[Generation]:
    """One left-padded batch through `model.generate`, each answer decoded and timed (its share of the batch's
    seconds; first and last token from the streamer's clock)."""
    import torch

    pad_id = renderer.tokenizer.pad_token_id
    device = model_device(model)
    width = max(len(p) for p in batch)
    input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in batch], device=device)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
    clock = _StepClock()
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(precision, device.type):
        out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                             eos_token_id=renderer.stop_token_ids, pad_token_id=pad_id, use_cache=True,
                             streamer=clock, **sampling)
    seconds = (time.perf_counter() - t0) / len(batch)
    generations = []
    for row in range(len(batch)):
        gen = decode_generation(out[row, width:].tolist(), renderer, seconds, stops)
        gen.first_token_seconds = clock.at_token(t0, 1)
        gen.finish_seconds = clock.at_token(t0, gen.num_tokens)
        generations.append(gen)
    return generations


def decode_generation(new_ids: list[int], renderer: ChatRenderer, seconds: float,
                      stop_strings: Sequence[str] = ()) -> Generation:
    """Generated token ids → a Generation, through the one decoder (any engine's ids come through here)."""
    out = decode_output(renderer.tokenizer, new_ids, renderer.fmt.think, renderer.stop_token_ids, stop_strings)
    return Generation(out.text, out.reasoning, out.answer, out.num_tokens, out.finish_reason, seconds)
