"""Generation extras used by evaluation: stop strings, per-answer timing, seeded sampling."""

from __future__ import annotations

import pytest

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.data.records import Message
from r1tune.models.generation import decode_generation, generate


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir):
    return models.load(ModelConfig(name=str(tiny_llama_dir)))


def _prompts(loaded, n=3):
    return [loaded.renderer.render_prompt([Message("user", f"Describe product {i}")]) for i in range(n)]


def test_stop_string_cuts_the_answer_and_counts_tokens_up_to_it(loaded):
    ids = loaded.tokenizer("Fine mug. ###END extra words", add_special_tokens=False)["input_ids"]
    gen = decode_generation(ids, loaded.renderer, 0.1, stop_strings=["###END"])
    assert gen.text == "Fine mug. " and gen.finish_reason == "stop"
    until = next(k for k in range(1, len(ids) + 1) if "###END" in loaded.tokenizer.decode(ids[:k]))
    assert gen.num_tokens == until < len(ids)


def test_generate_with_a_stop_string_returns_the_greedy_prefix(loaded):
    prompts = _prompts(loaded, 2)
    full = generate(loaded.model, loaded.renderer, prompts, 12)
    stop = full[0].text[4:7]
    cut = generate(loaded.model, loaded.renderer, prompts, 12, stop_strings=[stop])
    assert stop not in cut[0].text and full[0].text.startswith(cut[0].text)
    assert cut[0].finish_reason == "stop" and cut[0].num_tokens < full[0].num_tokens


def test_each_answer_has_time_to_first_token_and_its_own_finish_time(loaded):
    gens = generate(loaded.model, loaded.renderer, _prompts(loaded), 6, batch_size=3)
    batch_seconds = gens[0].seconds * 3
    for g in gens:
        assert 0 < g.first_token_seconds <= g.finish_seconds <= batch_seconds + 1e-6


def test_seeded_sampling_is_reproducible(loaded):
    prompts = _prompts(loaded, 2)
    runs = [[g.text for g in generate(loaded.model, loaded.renderer, prompts, 8, temperature=1.0, top_p=0.95,
                                      seed=5)] for _ in range(2)]
    assert runs[0] == runs[1]
