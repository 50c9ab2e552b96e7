"""One decision of device, compute dtype and attention kernel for every stage: the whole table on described
hardware (a CPU build of torch cannot fake CUDA), the settings the hardware cannot honour, and a walk over
the model-facing modules for tensor constructors that would land on the CPU beside a GPU model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from r1tune.errors import ConfigError
from r1tune.models.device import DevicePlan, Hardware, decide, model_device, on_device

A100 = Hardware(cuda_devices=1, cuda_bf16=True)
A100_FLASH = Hardware(cuda_devices=8, cuda_bf16=True, flash_attn=True)
T4 = Hardware(cuda_devices=1, cuda_bf16=False)
MAC = Hardware(mps=True)
XEON_AMX = Hardware(cpu_bf16=True)
OLD_CPU = Hardware()


@pytest.mark.parametrize(("hw", "device", "compute", "frozen", "weights", "attention", "scaling"), [
    (A100, "cuda", "bf16", torch.bfloat16, torch.bfloat16, "sdpa", False),
    (A100_FLASH, "cuda", "bf16", torch.bfloat16, torch.bfloat16, "flash_attention_2", False),
    (T4, "cuda", "fp16", torch.float16, torch.float16, "sdpa", True),
    (MAC, "mps", "fp16", torch.float16, torch.float16, "sdpa", True),
    (XEON_AMX, "cpu", "bf16", torch.bfloat16, torch.float32, "sdpa", False),  # inference merges into fp32
    (OLD_CPU, "cpu", "fp32", torch.float32, torch.float32, "sdpa", False),
])
def test_auto_decides_by_hardware(hw, device, compute, frozen, weights, attention, scaling):
    plan = decide(hw)
    assert (plan.device, plan.compute, plan.training_weights_dtype, plan.weights_dtype, plan.attn_implementation,
            plan.loss_scaling) == (device, compute, frozen, weights, attention, scaling)
    assert plan.gpus == hw.cuda_devices


def test_explicit_settings_are_kept_where_the_hardware_has_them():
    assert decide(A100, "fp32").weights_dtype == torch.float32
    assert decide(A100, "fp16").compute == "fp16" and decide(A100, "fp16").loss_scaling
    assert decide(OLD_CPU, "bf16").compute == "bf16"  # emulated, but asked for
    assert decide(A100_FLASH, attention="sdpa").attn_implementation == "sdpa"
    assert decide(OLD_CPU, attention="eager").attn_implementation == "eager"


@pytest.mark.parametrize(("hw", "precision", "attention", "message"), [
    (XEON_AMX, "fp16", "auto", "fp16 needs a GPU"),
    (T4, "bf16", "auto", "this GPU has no bf16 support"),
    (XEON_AMX, "auto", "flash_attention_2", "flash_attention_2 needs a CUDA GPU"),
    (A100, "auto", "flash_attention_2", "flash_attention_2 needs the flash_attn package"),
    (A100, "auto", "xformers", "is not one of auto, sdpa, flash_attention_2, eager"),
])
def test_what_the_hardware_cannot_honour_is_named(hw, precision, attention, message):
    with pytest.raises(ConfigError, match=message):
        decide(hw, precision, attention)


def test_inputs_follow_the_model(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    device = model_device(model)
    assert device == torch.device("cpu")
    batch = on_device({"input_ids": torch.tensor([[1, 2]]), "n": 3}, torch.device("meta"))
    assert batch["input_ids"].device.type == "meta" and batch["n"] == 3
    assert isinstance(decide(Hardware.detect()), DevicePlan)


# Modules whose tensors go into a model. Collate functions build CPU batches that their callers move with
# `on_device` (checked at the call sites: scoring.per_example_nll and the training recipe).
MODEL_FACING = ["models/scoring.py", "models/generation.py", "models/attention.py", "models/head_loss.py",
                "serve/engine.py", "serve/sampling.py", "serve/structured.py", "train/recipe.py", "train/objective.py",
                "eval/evaluate.py"]
CONSTRUCTORS = {"tensor", "zeros", "ones", "full", "arange", "empty", "randn", "rand", "as_tensor", "zeros_like"}
CPU_BATCH_BUILDERS = {"collate"}


def _bypassing_constructors(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        if function.name in CPU_BATCH_BUILDERS:
            continue
        for call in [n for n in ast.walk(function) if isinstance(n, ast.Call)]:
            target = call.func
            if (isinstance(target, ast.Attribute) and target.attr in CONSTRUCTORS and isinstance(target.value, ast.Name)
                    and target.value.id == "torch" and target.attr != "zeros_like"
                    and not any(k.arg == "device" for k in call.keywords)):
                found.append(f"{path.name}:{call.lineno} torch.{target.attr} in {function.name}")
    return found


def test_no_model_facing_tensor_is_built_without_a_device():
    root = Path(__import__("r1tune").__file__).parent
    offenders = [hit for module in MODEL_FACING if (root / module).is_file()
                 for hit in _bypassing_constructors(root / module)]
    assert offenders == []


def test_the_walk_finds_a_constructor_that_bypasses_the_device(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("import torch\ndef step(model, ids):\n    return model(torch.tensor(ids))\n")
    assert _bypassing_constructors(module) == ["bad.py:3 torch.tensor in step"]


def test_engine_choice_by_setting_device_and_package(monkeypatch):
    """eval.engine and serve.engine: `auto` is vLLM only on CUDA with the package; an explicit `vllm` that
    cannot run is refused by option name; `builtin` and `openai` are taken as they are."""
    import importlib.util

    from r1tune.models.device import choose_engine

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert choose_engine("auto", "cpu") == "builtin" and choose_engine("builtin", "cuda") == "builtin"
    assert choose_engine("auto", "cuda", "serve.engine") == "builtin"  # no vllm installed
    assert choose_engine("openai", "cpu", "serve.engine") == "openai"
    with pytest.raises(ConfigError, match="eval.engine: vllm needs a CUDA GPU"):
        choose_engine("vllm", "cpu")
    with pytest.raises(ConfigError, match="serve.engine: vllm needs the vllm package"):
        choose_engine("vllm", "cuda", "serve.engine")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert choose_engine("auto", "cuda") == "vllm" and choose_engine("vllm", "cuda", "serve.engine") == "vllm"
    assert choose_engine("auto", "cpu", "serve.engine") == "builtin"
