"""Device, compute dtype and attention implementation, decided in one place for every stage.

| hardware | device | `auto` precision | weights of a frozen base | loss scaling |
|---|---|---|---|---|
| CUDA with bf16 (Ampere and later) | cuda | bf16 | bf16 | no |
| CUDA without bf16 (T4, V100) | cuda | fp16 | fp16 | yes (fp16 gradients underflow) |
| Apple MPS | mps | fp16 | fp16 | yes |
| CPU with AVX512-BF16/AMX | cpu | bf16 autocast | fp32 | no |
| other CPU | cpu | fp32 | fp32 | no |

On CPUs the weights stay fp32 and matmuls run under bf16 autocast (LoRA updates are tiny and need the
precision). bf16 frozen weights were measured against that on this project's 2-core AMX CPU (SmolLM2-135M,
the e-commerce example's LoRA recipe, median step tokens/s over 8 steps, two alternating rounds): 353 and
451 tokens/s against fp32's 387 and 439, the same loss: no gain worth a second CPU path. On GPUs frozen weights are held in the compute dtype,
so a 32B/70B base does not need 4 bytes per parameter; trainable parameters stay fp32.
Attention: FlashAttention-2 on CUDA when the `flash_attn` package is installed, else PyTorch's SDPA.

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
        """The dtype frozen weights are loaded in: the compute dtype on GPUs, fp32 on CPUs (autocast)."""
        import torch

        if self.device == "cpu" or self.compute == "fp32":
            return torch.float32
        return torch.bfloat16 if self.compute == "bf16" else torch.float16


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
    """A collated batch (CPU tensors) moved to `device`."""
    return {name: value.to(device) if hasattr(value, "to") else value for name, value in batch.items()}
