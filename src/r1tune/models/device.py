"""Device, compute dtype and attention implementation, decided in one place for every stage.

| hardware | device | `auto` precision | frozen base while adapters train | weights for inference | loss scaling |
|---|---|---|---|---|---|
| CUDA with bf16 (Ampere and later) | cuda | bf16 | bf16 | bf16 | no |
| CUDA without bf16 (T4, V100) | cuda | fp16 | fp16 | fp16 | yes (fp16 gradients underflow) |
| Apple MPS | mps | fp16 | fp16 | fp16 | yes |
| CPU with AVX512-BF16/AMX | cpu | bf16 autocast | bf16 | fp32 | no |
| other CPU | cpu | fp32 | fp32 | fp32 | no |

Trainable parameters and optimiser state are always fp32 (PEFT keeps adapters in fp32), so a 32B/70B base
does not need 4 bytes per parameter. On CPUs with bf16, a frozen bf16 base against fp32 weights under the
same autocast was measured with `make bench-peer` (SmolLM2-135M, LoRA r16 on all linear layers, 300 alpaca
records, one epoch, three runs, the order alternated): 308, 306 and 307 real tokens/s against 271, 295 and
261, peak RSS 4.6 GB against 5.4 GB, the same mean loss (1.7136 / 1.7133). Inference on CPUs keeps fp32
weights: evaluation merges the adapter into them for decoding (`eval.evaluate.adapter_merged`), which bf16
weights would lose.
Attention: FlashAttention-2 on CUDA when the `flash_attn` package is installed, else PyTorch's SDPA.
While a model trains on a CPU in bf16, SDPA runs its backward in fp32 (`models/attention.py`): PyTorch's CPU
kernel is slower in bf16 there.

`Hardware` is a plain description, so the whole table is tested on a CPU machine (`decide`); `detect()`
reads the real machine. Tensors a stage feeds a model are created on `model_device(model)` (a test walks
the model-facing modules for constructors that bypass it).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from r1tune.errors import ConfigError

ComputeDtype = Literal["bf16", "fp16", "fp32"]
ATTENTION = ("auto", "sdpa", "flash_attention_2", "eager")


@dataclass(frozen=True)
class Hardware:
    cuda_devices: int = 0
    cuda_bf16: bool = False
    mps: bool = False
    cpu_bf16: bool = False
    flash_attn: bool = False

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        from r1tune.models.precision import cpu_has_native_bf16

        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(cuda_devices=cuda, cuda_bf16=bool(cuda) and torch.cuda.is_bf16_supported(),
                   mps=bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
                   cpu_bf16=cpu_has_native_bf16(), flash_attn=importlib.util.find_spec("flash_attn") is not None)


@dataclass(frozen=True)
class DevicePlan:
    device: Literal["cuda", "mps", "cpu"]
    compute: ComputeDtype
    attn_implementation: str
    gpus: int = 0

    @property
    def loss_scaling(self) -> bool:
        """fp16 training scales the loss so small gradients do not flush to zero (accelerate's GradScaler)."""
        return self.compute == "fp16"

    @property
    def weights_dtype(self) -> Any:
        """The dtype weights are loaded in for inference: the compute dtype on GPUs, fp32 on CPUs (autocast)."""
        import torch

        return torch.float32 if self.device == "cpu" else self.training_weights_dtype

    @property
    def training_weights_dtype(self) -> Any:
        """The dtype a frozen base is held in while adapters train: the compute dtype (fp32 without one)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.compute, torch.float32)


def decide(hw: Hardware, precision: str = "auto", attention: str = "auto") -> DevicePlan:
    """The plan for `hw`; a setting the hardware cannot honour is a ConfigError naming what is missing."""
    device = "cuda" if hw.cuda_devices else "mps" if hw.mps else "cpu"
    return DevicePlan(device, _compute(hw, device, precision), _attention(hw, device, attention), hw.cuda_devices)


def _compute(hw: Hardware, device: str, precision: str) -> ComputeDtype:
    if precision == "fp32":
        return "fp32"
    if precision == "fp16" and device == "cpu":
        raise ConfigError("train.precision fp16 needs a GPU (CUDA or Apple MPS); this machine has neither",
                          hint="use auto (bf16 where the CPU has it, else fp32) or fp32")
    if precision == "bf16" and device == "cuda" and not hw.cuda_bf16:
        raise ConfigError("train.precision bf16: this GPU has no bf16 support (T4/V100 and older)",
                          hint="use auto or fp16 (with loss scaling) on this GPU")
    if precision in ("bf16", "fp16"):
        return precision  # type: ignore[return-value]
    if device == "cuda":
        return "bf16" if hw.cuda_bf16 else "fp16"
    if device == "mps":
        return "fp16"
    return "bf16" if hw.cpu_bf16 else "fp32"


def _attention(hw: Hardware, device: str, attention: str) -> str:
    if attention not in ATTENTION:
        raise ConfigError(f"model.attn_implementation {attention!r} is not one of {', '.join(ATTENTION)}")
    if attention == "flash_attention_2" and not (device == "cuda" and hw.flash_attn):
        missing = "a CUDA GPU" if device != "cuda" else "the flash_attn package"
        raise ConfigError(f"model.attn_implementation flash_attention_2 needs {missing}",
                          hint="pip install flash-attn on a CUDA machine, or use auto (SDPA)")
    if attention == "auto":
        return "flash_attention_2" if device == "cuda" and hw.flash_attn else "sdpa"
    return attention


def current_plan(precision: str = "auto", attention: str = "auto") -> DevicePlan:
    """The plan on this machine."""
    return decide(Hardware.detect(), precision, attention)


def choose_engine(setting: str, device: str, option: str = "eval.engine") -> str:
    """Who generates for `option` (`eval.engine` or `serve.engine`): `auto` is vLLM on a CUDA machine that
    has the vllm package, else builtin; `vllm` where it cannot run fails by name, before any weights load;
    any other setting (`builtin`, `openai`) is taken as it is."""
    has_vllm = importlib.util.find_spec("vllm") is not None
    if setting == "vllm":
        if device != "cuda":
            raise ConfigError(f"{option}: vllm needs a CUDA GPU, and this machine has none",
                              hint=f"use {option}: builtin (or auto) on this machine")
        if not has_vllm:
            raise ConfigError(f"{option}: vllm needs the vllm package", hint="pip install 'r1tune[vllm]'")
    if setting == "auto":
        return "vllm" if device == "cuda" and has_vllm else "builtin"
    return setting


def model_device(model: Any) -> Any:
    """Where a model's inputs must live: the device of its input embeddings (the first shard of a model
    spread over several GPUs with `device_map`)."""
    import torch

    try:
        return model.get_input_embeddings().weight.device
    except (AttributeError, NotImplementedError):
        pass
    parameters = getattr(model, "parameters", None)
    first = next(parameters(), None) if callable(parameters) else None
    return first.device if first is not None else getattr(model, "device", torch.device("cpu"))


def on_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """A collated batch (CPU tensors) moved to `device`. To a GPU through pinned memory, without waiting: a
    blocking copy synchronises the stream, so the host would wait for every kernel queued before it and
    the GPU would idle while the next batch is collated."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return {name: value.to(device) if hasattr(value, "to") else value for name, value in batch.items()}
    return {name: value.pin_memory().to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for name, value in batch.items()}
