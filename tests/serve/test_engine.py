"""The continuous-batching engine against `model.generate`, on the tiny Llama in fp32 (exact comparisons)."""

from __future__ import annotations

import time

import pytest
import torch
from engine_helpers import Collector, _prompts, _reference

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.serve.adapters import AdapterRegistry
from r1tune.serve.engine import INTERNAL_ERROR, Engine, EngineBusy, EngineRequest, SamplingParams


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    loaded.model.eval()
    return loaded


def _submit(engine, prompt, params=None, adapter=None, deadline=None):
    collector = Collector()
    request = EngineRequest(prompt, params or SamplingParams(max_tokens=12), collector, adapter=adapter,
                            deadline=deadline)
    engine.submit(request)
    return request, collector


def test_batched_greedy_matches_generate_while_requests_join_and_leave(tiny):
    prompts = _prompts(tiny, 6)
    lengths = [12, 5, 9, 12, 3, 7]  # requests leave at different steps
    expected = [_reference(tiny.model, tiny, p, n) for p, n in zip(prompts, lengths, strict=True)]
    engine = Engine(tiny.model, tiny.tokenizer, tiny.renderer.stop_token_ids, max_batch_size=3)
    engine.start()
    try:
        collectors = []
        for prompt, n in zip(prompts, lengths, strict=True):
            collectors.append(_submit(engine, prompt, SamplingParams(max_tokens=n))[1])
            time.sleep(0.01)  # later requests join a batch that is already decoding
        finished = [c.wait() for c in collectors]
    finally:
        engine.stop()
    assert [c.text for c in collectors] == expected
    assert all(f.reason in ("length", "stop") and f.completion_tokens <= n for f, n in zip(finished, lengths, strict=True))
    assert engine.steps > 0 and engine.num_running == 0


def test_cancelled_request_stops_and_others_continue(tiny):
    prompts = _prompts(tiny, 2)
    engine = Engine(tiny.model, tiny.tokenizer, [], max_batch_size=4)  # no stop token: runs to max_tokens
    engine.start()
    try:
        long_request, long_events = _submit(engine, prompts[0], SamplingParams(max_tokens=400))
        _, short_events = _submit(engine, prompts[1], SamplingParams(max_tokens=10))
        time.sleep(0.2)
        long_request.cancel()
        cancelled = long_events.wait()
        assert short_events.wait().reason == "length"
    finally:
        engine.stop()
    assert cancelled.reason == "cancelled" and cancelled.completion_tokens < 400


def test_deadline_finishes_with_timeout(tiny):
    engine = Engine(tiny.model, tiny.tokenizer, [], max_batch_size=2)
    engine.start()
    try:
        _, events = _submit(engine, _prompts(tiny, 1)[0], SamplingParams(max_tokens=1000),
                            deadline=time.monotonic() + 0.3)
        assert events.wait().reason == "timeout"
    finally:
        engine.stop()


def test_same_seed_same_sample_and_temperature_changes_output(tiny):
    prompt = _prompts(tiny, 1)[0]
    engine = Engine(tiny.model, tiny.tokenizer, tiny.renderer.stop_token_ids)
    engine.start()
    try:
        def sample(seed):
            _, events = _submit(engine, prompt, SamplingParams(max_tokens=16, temperature=1.0, top_p=0.9, seed=seed))
            events.wait()
            return events.text

        first, again, other = sample(7), sample(7), sample(8)
        greedy = _submit(engine, prompt, SamplingParams(max_tokens=16))[1]
        greedy.wait()
    finally:
        engine.stop()
    assert first == again
    assert other != first or greedy.text != first


def test_requests_arriving_together_at_an_idle_engine_share_one_prefill(tiny):
    # Generous gap and window so a loaded CI machine cannot split the group; the default is 5/25 ms.
    engine = Engine(tiny.model, tiny.tokenizer, tiny.renderer.stop_token_ids, gather_gap_s=0.5, gather_max_s=5)
    engine.start()
    try:
        prompts = _prompts(tiny, 4)
        collectors = []
        for prompt in prompts:  # a burst: each request 20 ms after the previous one
            collectors.append(_submit(engine, prompt, SamplingParams(max_tokens=4))[1])
            time.sleep(0.02)
        for collector in collectors:
            assert collector.wait().reason in ("stop", "length")
        assert engine.prefills == 1
        lone = time.monotonic()  # a request alone waits one gap, not the whole window
        _submit(engine, prompts[0], SamplingParams(max_tokens=1))[1].wait()
        assert engine.prefills == 2 and time.monotonic() - lone < 4
    finally:
        engine.stop()


def test_full_queue_refuses_new_requests(tiny):
    engine = Engine(tiny.model, tiny.tokenizer, [], max_waiting=2)  # not started: nothing is admitted
    prompt = _prompts(tiny, 1)[0]
    _submit(engine, prompt)
    _submit(engine, prompt)
    with pytest.raises(EngineBusy):
        _submit(engine, prompt)


def test_an_engine_whose_thread_has_died_reports_it_and_a_stopped_one_does_not(tiny, monkeypatch):
    """`/health` answers 503 with this reason: a load balancer stops sending requests nothing would answer."""
    engine = Engine(tiny.model, tiny.tokenizer, [])
    monkeypatch.setattr(engine, "_loop", lambda: None)  # the thread ends at once, as after a fatal error
    engine.start()
    engine._thread.join(10)
    assert engine.problem() == "the generation thread has stopped"
    engine.stop()
    assert engine.problem() is None
    healthy = Engine(tiny.model, tiny.tokenizer, [])
    healthy.start()
    try:
        assert healthy.problem() is None
    finally:
        healthy.stop()


def test_a_failing_forward_fails_its_requests_and_the_engine_keeps_serving(tiny, monkeypatch):
    engine = Engine(tiny.model, tiny.tokenizer, tiny.renderer.stop_token_ids)
    real_forward = engine._forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated out of memory")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(engine, "_forward", flaky)
    engine.start()
    try:
        _, failed = _submit(engine, _prompts(tiny, 1)[0])
        failure = failed.wait()
        _, ok = _submit(engine, _prompts(tiny, 1)[0])
        assert ok.wait().reason in ("length", "stop")
    finally:
        engine.stop()
    # a lone request has no half to retry in; the cause is logged, never sent to a client
    assert failure.reason == "error" and failure.message == INTERNAL_ERROR


def test_mixed_adapter_batch_matches_each_adapter_alone(tiny_llama_dir, adapter_runs):
    """Base, `shop` and `clinic` rows in one batch give what each model gives on its own, and so do batches
    of one kind."""
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    engine = Engine(loaded.model.eval(), loaded.tokenizer, loaded.renderer.stop_token_ids, max_batch_size=8)
    registry = AdapterRegistry(engine)
    for name, run in adapter_runs.items():
        registry.load(name, run)
    peft_model = engine.model
    prompts = _prompts(loaded, 3)
    expected = {}
    for adapter in (None, "shop", "clinic"):
        for i, prompt in enumerate(prompts):
            if adapter is None:
                with peft_model.disable_adapter():
                    expected[adapter, i] = _reference(peft_model, loaded, prompt, 8)
            else:
                peft_model.set_adapter(adapter)
                expected[adapter, i] = _reference(peft_model, loaded, prompt, 8)
    assert expected["shop", 0] != expected[None, 0]  # the adapters really change the output
    engine.start()
    try:
        results = {}
        for adapter in (None, "shop", "clinic"):
            for i, prompt in enumerate(prompts):
                results[adapter, i] = _submit(engine, prompt, SamplingParams(max_tokens=8), adapter=adapter)[1]
        for collector in results.values():
            collector.wait()
        assert {k: c.text for k, c in results.items()} == expected
        # Batches of one kind skip mixing (adapter layers off, or the one adapter active), switching back
        # and forth between batches; the answers stay the same.
        for adapter in ("shop", None, "clinic", "shop"):
            group = [_submit(engine, prompt, SamplingParams(max_tokens=8), adapter=adapter)[1] for prompt in prompts]
            for collector in group:
                collector.wait()
            assert [c.text for c in group] == [expected[adapter, i] for i in range(len(prompts))], adapter
            assert engine._adapter_state == (("base", None) if adapter is None else ("one", adapter))
        registry.unload("clinic")
        registry.unload("shop")
        assert not engine.uses_adapters  # the last unload removed the LoRA layers
        _, base_again = _submit(engine, prompts[0], SamplingParams(max_tokens=8))
        base_again.wait()
    finally:
        engine.stop()
    assert base_again.text == expected[None, 0]


def test_request_for_an_adapter_that_is_not_loaded_fails_alone(tiny):
    engine = Engine(tiny.model, tiny.tokenizer, tiny.renderer.stop_token_ids)
    engine.start()
    try:
        _, ghost = _submit(engine, _prompts(tiny, 1)[0], adapter="gone")
        _, fine = _submit(engine, _prompts(tiny, 1)[0])
        failure = ghost.wait()
        assert fine.wait().reason in ("length", "stop")
    finally:
        engine.stop()
    assert failure.reason == "error" and "'gone' was unloaded" in failure.message


def test_penalties_and_logit_bias_follow_openai_definitions():
    from r1tune.serve.sampling import adjust_logits

    row = torch.zeros(8)
    params = SamplingParams(frequency_penalty=0.5, presence_penalty=1.0, logit_bias=((2, 3.0), (5, -100.0)))
    adjust_logits(row, params, {3: 2, 4: 1})
    assert row.tolist() == [0.0, 0.0, 3.0, -2.0, -1.5, -100.0, 0.0, 0.0]


def test_logit_bias_forces_a_token_and_penalties_stop_it_repeating(tiny):
    prompt = _prompts(tiny, 1)[0]
    token = tiny.tokenizer.encode(" blue", add_special_tokens=False)[0]
    engine = Engine(tiny.model, tiny.tokenizer, [])
    engine.start()
    try:
        forced = _submit(engine, prompt, SamplingParams(max_tokens=5, logit_bias=((token, 100.0),)))[1]
        favoured = _submit(engine, prompt, SamplingParams(max_tokens=12, logit_bias=((token, 20.0),)))[1]
        penalised = _submit(engine, prompt, SamplingParams(max_tokens=12, logit_bias=((token, 20.0),),
                                                           frequency_penalty=2.0, presence_penalty=2.0))[1]
        for collector in (forced, favoured, penalised):
            collector.wait()
    finally:
        engine.stop()
    assert forced.text == tiny.tokenizer.decode([token] * 5)
    assert favoured.text == tiny.tokenizer.decode([token] * 12)  # +20 outweighs every logit of the model
    # each use costs 2 (frequency) and the first another 2 (presence): the bias is used up after a few
    assert 1 <= penalised.text.count("blue") < 12
