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
    def reserve(self, context_tokens: int) -> None:
        """The longest prompt plus answer any later `generate` call asks for (told once, before them)."""

    def generate(self, variant: str, loaded: Any, prompts: list[list[int]], max_new_tokens: int,
                 **kwargs: Any) -> list[Generation]: ...


class BuiltinEngine:
    """transformers' generate on the loaded model (the adapter is switched by the caller)."""

    def reserve(self, context_tokens: int) -> None:
        pass  # its cache grows with the batch it generates

    def generate(self, variant: str, loaded: Any, prompts: list[list[int]], max_new_tokens: int,
                 **kwargs: Any) -> list[Generation]:
        return generate(loaded.model, loaded.renderer, prompts, max_new_tokens, **kwargs)


class VllmEngine:
    """vLLM's offline `LLM` over the base weights, with the run's adapter (if any) as a LoRA request.

    The engine starts at `reserve` (or the first `generate`), with `max_model_len` the evaluation's longest
    prompt plus its answer budget: left to itself vLLM reserves KV cache for the model's whole window (128k
    tokens for the R1 distills, 7.5 GB for a 7B), which beside the scoring model's weights does not fit the
    half of a 24-48 GB GPU this engine takes, and vLLM refuses to start."""

    def __init__(self, base: str, adapter: Path | None, gpus: int, dtype: str, max_lora_rank: int = 64,
                 gpu_memory_utilization: float = 0.5) -> None:
        self.adapter = adapter
        self.settings = dict(model=base, enable_lora=adapter is not None, max_lora_rank=max_lora_rank,
                             tensor_parallel_size=max(gpus, 1), gpu_memory_utilization=gpu_memory_utilization,
                             dtype={"fp16": "float16", "fp32": "float32"}.get(dtype, "bfloat16"), seed=0)
        self._llm: Any = None

    def reserve(self, context_tokens: int) -> None:
        if self._llm is None:
            self._start(context_tokens)

    @property
    def llm(self) -> Any:
        if self._llm is None:
            self._start(None)
        return self._llm

    def _start(self, context_tokens: int | None) -> None:
        from vllm import LLM

        self._llm = LLM(**self.settings, **({"max_model_len": context_tokens} if context_tokens else {}))

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
