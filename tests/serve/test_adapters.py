"""Unloading or swapping an adapter never takes the weights from under a request that chose them: a request
being prefilled, or picked but not yet queued, finishes on the weights it picked."""

from __future__ import annotations

import threading
import time

import pytest
from engine_helpers import Collector, _prompts, _reference

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.serve.adapters import AdapterError, AdapterRegistry
from r1tune.serve.engine import Engine, EngineRequest, SamplingParams

TOKENS = 8


@pytest.fixture
def served(tiny_llama_dir, adapter_runs):
    """A started engine serving the `shop` and `clinic` adapters, and shop's greedy answer to a prompt."""
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    engine = Engine(loaded.model.eval(), loaded.tokenizer, loaded.renderer.stop_token_ids)
    registry = AdapterRegistry(engine)
    for name, run in adapter_runs.items():
        registry.load(name, run)
    prompt = _prompts(loaded, 1)[0]
    engine.model.set_adapter("shop")
    expected = _reference(engine.model, loaded, prompt, TOKENS)
    engine.start()
    yield engine, registry, prompt, expected
    engine.stop()


def _held_prefill(engine: Engine) -> tuple[threading.Event, threading.Event]:
    """Make the engine's next prefill wait until `release` is set; `entered` is set once it waits."""
    entered, release, original = threading.Event(), threading.Event(), engine._prefill

    def held(seqs):
        entered.set()
        assert release.wait(30)
        return original(seqs)

    engine._prefill = held  # type: ignore[method-assign]
    return entered, release


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=fn()))
    thread.start()
    return thread, outcome


def test_a_request_in_prefill_keeps_the_adapter_it_asked_for_while_it_is_unloaded(served):
    engine, registry, prompt, expected = served
    entered, release = _held_prefill(engine)
    collector = Collector()
    engine.submit(EngineRequest(prompt, SamplingParams(max_tokens=TOKENS), collector, adapter="shop"))
    assert entered.wait(30)
    unloading, outcome = _in_thread(lambda: registry.unload("shop"))
    time.sleep(0.3)  # the unload asks while the request is between the queue and the running batch
    release.set()
    assert collector.wait().reason == "length"
    assert collector.text == expected
    unloading.join(30)
    assert outcome["result"].name == "shop"
    assert set(engine.model.peft_config) == {"clinic"}


def test_a_request_queued_through_the_registry_during_a_swap_runs_on_the_weights_it_picked(served, adapter_runs):
    """The registry picks and queues under one lock that the swap's hand-over also takes: a request either
    reaches the engine before the old weights are retired (and so holds them) or picks the new ones."""
    engine, registry, prompt, expected = served
    handing_over, release, submit = threading.Event(), threading.Event(), engine.submit

    def slow_submit(request):
        handing_over.set()
        assert release.wait(30)
        submit(request)

    engine.submit = slow_submit  # type: ignore[method-assign]
    collector = Collector()
    request = EngineRequest(prompt, SamplingParams(max_tokens=TOKENS), collector)
    queueing, picked = _in_thread(lambda: registry.submit(request, "shop", user=None))
    assert handing_over.wait(30)
    swapping, swapped = _in_thread(lambda: registry.replace("shop", adapter_runs["clinic"]))
    time.sleep(0.3)
    assert registry.get("shop").engine_name == "shop"  # the swap waits for the hand-over
    release.set()
    queueing.join(30)
    swapping.join(30)
    assert picked["result"].engine_name == "shop" and collector.wait().reason == "length"
    assert collector.text == expected
    assert swapped["result"].engine_name == registry.get("shop").engine_name != "shop"
    assert "shop" not in engine.model.peft_config


def test_a_request_for_an_unknown_or_unloading_adapter_is_refused_before_it_is_queued(served):
    engine, registry, prompt, _ = served
    request = EngineRequest(prompt, SamplingParams(max_tokens=TOKENS), Collector())
    with pytest.raises(AdapterError, match="nope"):
        registry.submit(request, "nope", user=None)
    assert engine.num_waiting == 0 and engine.num_running == 0


def test_commands_that_attach_nothing_leave_the_adapter_setup_alone(served, monkeypatch):
    """A swap waiting for a long answer checks every 50 ms on the engine thread; only a command that
    attaches or detaches makes the next step set the adapters up again (peft walks every layer to do so)."""
    engine, registry, prompt, expected = served
    switches: list[str] = []
    original = engine.model.set_adapter
    monkeypatch.setattr(engine.model, "set_adapter", lambda name: (switches.append(name), original(name)))

    def answer() -> str:
        collector = Collector()
        engine.submit(EngineRequest(prompt, SamplingParams(max_tokens=TOKENS), collector, adapter="shop"))
        collector.wait()
        return collector.text

    assert answer() == expected and switches == ["shop"]
    for _ in range(3):
        engine.call(lambda: engine.adapters_in_use()).result(30)
    assert answer() == expected and switches == ["shop"]
    registry.unload("clinic")
    assert answer() == expected and switches == ["shop", "shop"]
