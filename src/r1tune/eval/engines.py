"""Who generates the evaluation's answers: r1tune's builtin `generate` (CPU default, any model) or vLLM's
offline engine on CUDA (`eval.engine: vllm`, or `auto` when vLLM is installed and a GPU is there).

vLLM is handed r1tune's exact prompt token ids (`TokensPrompt`), never a chat template, and stops on the
renderer's stop ids; its token ids are decoded by r1tune's one decoder (`models/generation`), so answers,
reasoning split and finish reasons mean the same with either engine. The base and the tuned model are
one vLLM engine: the tuned pass adds the run's adapter as a `LoRARequest`, the base pass does not.
Perplexity is always computed by r1tune's scorer on its own loaded model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from r1tune.models.device import choose_engine
from r1tune.models.generation import Generation, decode_generation, generate


class Engine(Protocol):
    def generate(self, variant: str, loaded: Any, prompts: list[list[int]], max_new_tokens: int,
                 **kwargs: Any) -> list[Generation]: ...


class BuiltinEngine:
    """transformers' generate on the loaded model (the adapter is switched by the caller)."""

    def generate(self, variant: str, loaded: Any, prompts: list[list[int]], max_new_tokens: int,
                 **kwargs: Any) -> list[Generation]:
        return generate(loaded.model, loaded.renderer, prompts, max_new_tokens, **kwargs)


class VllmEngine:
    """vLLM's offline `LLM` over the base weights, with the run's adapter (if any) as a LoRA request."""

    def __init__(self, base: str, adapter: Path | None, gpus: int, dtype: str, max_lora_rank: int = 64,
                 gpu_memory_utilization: float = 0.5) -> None:
        from vllm import LLM

        self.adapter = adapter
        self.llm = LLM(model=base, enable_lora=adapter is not None, max_lora_rank=max_lora_rank,
                       tensor_parallel_size=max(gpus, 1), dtype={"fp16": "float16", "fp32": "float32"}.get(dtype, "bfloat16"),
                       gpu_memory_utilization=gpu_memory_utilization, seed=0)

    def generate(self, variant: str, loaded: Any, prompts: list[list[int]], max_new_tokens: int,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                 stop_strings: Sequence[str] = (), **_: Any) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        # r1tune decodes the ids itself; vLLM detokenizes only to find stop strings (it refuses them without)
        params = SamplingParams(temperature=temperature, top_p=top_p, seed=seed, max_tokens=max_new_tokens,
                                stop_token_ids=list(loaded.renderer.stop_token_ids), stop=list(stop_strings) or None,
                                detokenize=bool(stop_strings))
        lora = LoRARequest("tuned", 1, str(self.adapter)) if variant == "tuned" and self.adapter else None
        start = time.perf_counter()
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, lora_request=lora)
        seconds = (time.perf_counter() - start) / max(len(prompts), 1)
        return [decode_generation(list(out.outputs[0].token_ids), loaded.renderer, seconds, stop_strings)
                for out in outputs]


def make_engine(setting: str, plan: Any, loaded: Any, adapter: Path | None) -> Engine:
    """The engine for this run's evaluation (`plan`: models/device.DevicePlan)."""
    if choose_engine(setting, plan.device) == "builtin" or adapter is None:
        return BuiltinEngine()  # whole trained weights would make the base a second vLLM model: builtin does both
    return VllmEngine(loaded.source.location, adapter, plan.gpus, plan.compute)
