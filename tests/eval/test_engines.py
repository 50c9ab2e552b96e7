"""Engine choice for evaluation, and the contract with vLLM checked against a stand-in `vllm` package (the
real one needs CUDA): r1tune's prompt ids go in as they are, the adapter only on the tuned pass, the
renderer's stop ids, and the answers come out through r1tune's own decoder."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field

import pytest

from r1tune.eval.engines import BuiltinEngine, VllmEngine, make_engine
from r1tune.models.device import Hardware, decide


@dataclass
class _FakeLLM:
    kwargs: dict
    calls: list = field(default_factory=list)
    reply: list = field(default_factory=list)

    def generate(self, prompts, params, lora_request=None):
        self.calls.append((prompts, params, lora_request))
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=self.reply)]) for _ in prompts]


def _sampling_params(**kwargs) -> dict:
    """vLLM's own argument check that a stand-in must keep: stop strings need detokenization."""
    if kwargs.get("stop") and not kwargs.get("detokenize", True):
        raise ValueError("stop strings are only supported when detokenize is True")
    return kwargs


@pytest.fixture
def fake_vllm(monkeypatch):
    made = []

    def llm(**kwargs):
        made.append(_FakeLLM(kwargs))
        return made[-1]

    modules = {"vllm": types.SimpleNamespace(LLM=llm, SamplingParams=_sampling_params),
               "vllm.inputs": types.SimpleNamespace(TokensPrompt=lambda prompt_token_ids: {"ids": prompt_token_ids}),
               "vllm.lora": types.SimpleNamespace(),
               "vllm.lora.request": types.SimpleNamespace(LoRARequest=lambda name, i, path: (name, i, path))}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return made


def test_vllm_gets_r1tunes_prompt_ids_and_the_adapter_only_when_tuned(fake_vllm, tiny_llama_dir, tmp_path):
    from r1tune import models
    from r1tune.config import ModelConfig
    from r1tune.data.records import Message

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)), with_weights=False)
    engine = VllmEngine(str(tiny_llama_dir), tmp_path / "adapter", gpus=2, dtype="bf16")
    assert fake_vllm == []  # started by reserve, with the context the evaluation needs
    engine.reserve(300)
    engine.reserve(900)  # once started, it stays as it is
    (llm,) = fake_vllm
    assert llm.kwargs["enable_lora"] and llm.kwargs["tensor_parallel_size"] == 2 and llm.kwargs["dtype"] == "bfloat16"
    assert llm.kwargs["max_model_len"] == 300
    tokenizer = loaded.tokenizer
    llm.reply = tokenizer("Yes, 30 days.", add_special_tokens=False).input_ids + [loaded.renderer.stop_token_ids[0]]
    prompt = loaded.renderer.render_prompt([Message("user", "Can I return it?")])
    tuned = engine.generate("tuned", loaded, [prompt], 16, stop_strings=("###",))
    base = engine.generate("base", loaded, [prompt], 16)
    (sent, params, lora), (_, _, base_lora) = llm.calls
    assert sent == [{"ids": prompt}] and lora == ("tuned", 1, str(tmp_path / "adapter")) and base_lora is None
    assert params["stop_token_ids"] == loaded.renderer.stop_token_ids and params["stop"] == ["###"]
    assert params["detokenize"] and not llm.calls[1][1]["detokenize"]  # text only where stop strings need it
    assert params["max_tokens"] == 16 and params["temperature"] == 0.0
    assert tuned[0].answer == base[0].answer == "Yes, 30 days." and tuned[0].finish_reason == "stop"


def test_make_engine_keeps_builtin_on_cpu_and_for_whole_model_runs(fake_vllm, monkeypatch):
    loaded = types.SimpleNamespace(source=types.SimpleNamespace(location="base"), model=None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert isinstance(make_engine("auto", decide(Hardware()), loaded, None), BuiltinEngine)
    gpu = decide(Hardware(cuda_devices=1, cuda_bf16=True))
    assert isinstance(make_engine("auto", gpu, loaded, None), BuiltinEngine)  # whole weights: builtin does both
    assert isinstance(make_engine("auto", gpu, loaded, "adapter"), VllmEngine) and fake_vllm == []


def test_evaluation_reserves_its_longest_prompt_plus_the_answer_budget(tiny_llama_dir, tmp_path):
    """What evaluate() tells the engine before generating: the longest of its test, red-team and reasoning
    prompts plus eval.max_new_tokens (vLLM would otherwise reserve KV cache for the model's whole window)."""
    from r1tune import models
    from r1tune.config import EvalConfig, ModelConfig
    from r1tune.data.records import Message, Record
    from r1tune.eval import evaluate
    from r1tune.eval.retention import probe_selection

    class Recording(BuiltinEngine):
        def __init__(self):
            self.reserved = []

        def reserve(self, context_tokens):
            self.reserved.append(context_tokens)

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    records = [Record([Message("user", "Can I return it? " * n), Message("assistant", "Yes.")]) for n in (1, 9)]
    cfg = EvalConfig(max_new_tokens=5, reasoning_probes=2, redteam=[], latency_prompts=0, compare_base=False)
    engine = Recording()
    evaluate(cfg, loaded, records, tmp_path, "fp32", 64, False, engine=engine)
    prompts = [loaded.renderer.render_prompt(r.prompt_messages) for r in records]
    prompts += [loaded.renderer.render_prompt([Message("user", p.question)]) for p in probe_selection(2)]
    assert engine.reserved == [max(map(len, prompts)) + 5]
