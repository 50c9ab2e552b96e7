"""One request can never break another: per-sequence failures end that sequence alone, and a failed
forward pass is retried in halves before anyone is failed (issue: serving hardening, defect 1)."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import Collector, _prompts, _reference

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.serve.engine import INTERNAL_ERROR, Engine, EngineRequest, SamplingParams


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    loaded.model.eval()
    return loaded


def _first_token(loaded, prompt: list[int]) -> int:
    with torch.inference_mode():
        return int(loaded.model(input_ids=torch.tensor([prompt])).logits[0, -1].argmax())


def _run(engine: Engine, jobs: list[tuple[list[int], SamplingParams]]) -> list[Collector]:
    collectors = []
    engine.start()
    try:
        for prompt, params in jobs:
            collector = Collector()
            engine.submit(EngineRequest(prompt, params, collector))
            collectors.append(collector)
        for collector in collectors:
            collector.wait()
    finally:
        engine.stop()
    return collectors


def test_a_request_finished_by_its_first_token_leaves_the_others_running(tiny):
    prompts = _prompts(tiny, 6)
    firsts = [_first_token(tiny, p) for p in prompts]
    poisoned = prompts[0]
    others = [p for p, first in zip(prompts, firsts, strict=True) if first != firsts[0]][:3]
    assert len(others) == 3, "the tiny model gives the same first token for every prompt"
    # The poisoned prompt's greedy first token is a stop token: it answers with nothing.
    engine = Engine(tiny.model, tiny.tokenizer, [*tiny.renderer.stop_token_ids, firsts[0]], max_batch_size=8,
                    gather_gap_s=0.5, gather_max_s=2)
    collectors = _run(engine, [(p, SamplingParams(max_tokens=6)) for p in [poisoned, *others]])
    empty = collectors[0].finished
    assert empty.reason == "stop" and empty.completion_tokens == 1 and collectors[0].text == ""
    for collector in collectors[1:]:
        assert collector.finished.reason in ("length", "stop") and collector.finished.message == ""
    assert engine.prefills == 1  # all four really shared the batch


def test_an_unusable_seed_fails_its_own_request_only(tiny):
    prompts = _prompts(tiny, 4)
    jobs = [(p, SamplingParams(max_tokens=5)) for p in prompts]
    jobs[1] = (prompts[1], SamplingParams(max_tokens=5, temperature=1.0, seed=2**64))  # torch refuses it
    engine = Engine(tiny.model, tiny.tokenizer, [], max_batch_size=8, gather_gap_s=0.5, gather_max_s=2)
    collectors = _run(engine, jobs)
    bad = collectors[1].finished
    assert bad.reason == "error" and bad.message.startswith("invalid request settings: ValueError")
    assert [c.finished.reason for i, c in enumerate(collectors) if i != 1] == ["length"] * 3
    assert all(c.finished.message == "" for i, c in enumerate(collectors) if i != 1)


class _OutOfMemoryAbove:
    """The tiny model, but a forward pass over more than `limit` rows raises, as a GPU out of memory does."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.failures = model, limit, 0

    def __call__(self, **kwargs):
        if kwargs["input_ids"].shape[0] > self.limit:
            self.failures += 1
            raise RuntimeError("CUDA out of memory (simulated, with a secret detail)")
        return self.model(**kwargs)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_a_failing_batch_is_retried_in_halves_and_everyone_gets_the_right_answer(tiny, phase):
    prompts = _prompts(tiny, 4)
    expected = [_reference(tiny.model, tiny, p, 6) for p in prompts]
    model = _OutOfMemoryAbove(tiny.model, limit=2)
    engine = Engine(model, tiny.tokenizer, tiny.renderer.stop_token_ids, max_batch_size=8, gather_gap_s=0.5,
                    gather_max_s=2, prefill_token_budget=10_000 if phase == "prefill" else 2 * 64)
    if phase == "decode":  # prefill in pairs (by the token budget), so only the decode step sees 4 rows
        assert all(len(p) <= 64 for p in prompts)
    collectors = _run(engine, [(p, SamplingParams(max_tokens=6)) for p in prompts])
    assert [c.text for c in collectors] == expected
    assert all(c.finished.reason in ("length", "stop") for c in collectors)
    assert model.failures >= 1


class _PoisonedRow:
    """Raises whenever a given token is being decoded, whatever else shares the batch."""

    def __init__(self, model, token: int) -> None:
        self.model, self.token = model, token

    def __call__(self, **kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[1] == 1 and bool((ids == self.token).any()):
            raise RuntimeError("secret detail of someone else's request")
        return self.model(**kwargs)


def test_a_half_that_fails_again_is_failed_without_the_cause_and_the_rest_finish(tiny):
    prompts = _prompts(tiny, 4)
    expected = [_reference(tiny.model, tiny, p, 6) for p in prompts]
    poison = _first_token(tiny, prompts[3])
    healthy = [i for i in range(4) if _first_token(tiny, prompts[i]) != poison]
    model = _PoisonedRow(tiny.model, poison)
    engine = Engine(model, tiny.tokenizer, tiny.renderer.stop_token_ids, max_batch_size=8, gather_gap_s=0.5,
                    gather_max_s=2)
    collectors = _run(engine, [(p, SamplingParams(max_tokens=6)) for p in prompts])
    failed = [i for i, c in enumerate(collectors) if c.finished.reason == "error"]
    assert 3 in failed and len(failed) <= 2  # the poisoned row's half, nobody else
    for i in failed:
        assert collectors[i].finished.message == INTERNAL_ERROR
    for i in set(range(4)) - set(failed):
        assert i in healthy and collectors[i].text == expected[i]
