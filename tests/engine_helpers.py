"""Shared by the serving-engine tests: prompts, a `model.generate` reference and an event collector."""

from __future__ import annotations

import threading

import torch

from r1tune.data import Message
from r1tune.serve.engine import Finished, TextDelta


def _prompts(loaded, n):
    return [loaded.renderer.render_prompt([Message("user", "tell me " + "more " * (i * 3 % 11))]) for i in range(n)]


def _reference(model, loaded, prompt, max_tokens):
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                             do_sample=False, eos_token_id=loaded.renderer.stop_token_ids,
                             pad_token_id=loaded.tokenizer.pad_token_id)
    return loaded.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)


class Collector:
    """Gathers one request's events; `wait` blocks (bounded) until its Finished event."""

    def __init__(self) -> None:
        self.text = ""
        self.finished: Finished | None = None
        self.done = threading.Event()

    def __call__(self, event) -> None:
        if isinstance(event, TextDelta):
            self.text += event.text
        else:
            self.finished = event
            self.done.set()

    def wait(self, timeout: float = 60) -> Finished:
        assert self.done.wait(timeout), "request did not finish"
        assert self.finished is not None
        return self.finished
