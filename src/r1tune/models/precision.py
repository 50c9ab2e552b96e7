"""Numeric precision: bf16 (or fp16 on GPUs without bf16) autocast where the hardware does it natively,
fp32 otherwise. Which one is decided by models/device.py, for every stage; on CPUs weights stay fp32
(LoRA updates are tiny and need the precision) and autocast runs the matmuls in bf16, about 1.7x faster
than fp32 on CPUs with AVX512-BF16/AMX.
"""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path
from typing import Literal

Precision = Literal["bf16", "fp16", "fp32"]


@cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs whose flags include AVX512-BF16 or AMX-BF16 (Linux /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(setting: str) -> Precision:
    """Turn the config's `auto|bf16|fp16|fp32` into what will actually run on this machine (a setting the
    hardware cannot honour is a ConfigError, see models/device.py)."""
    from r1tune.models.device import current_plan

    return current_plan(setting).compute


def autocast(precision: Precision, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """An autocast context for bf16/fp16, a no-op for fp32."""
    import torch

    if precision in ("bf16", "fp16"):
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def adapter_input_casts_skipped(model: object, precision: Precision) -> contextlib.AbstractContextManager:
    """While training under autocast, stop peft's LoRA layers casting each input to their fp32 weights'
    dtype. Autocast casts the matmul operands back to the compute dtype anyway, and bf16 -> fp32 -> bf16 is
    exact, so the two full-activation copies per adapted layer are pure cost: without them LoRA steps on
    SmolLM2-135M ran 10-16% faster on this CPU (12 batches of bench-peer's data in file order, three
    alternating rounds; whole length-grouped runs vary more than that from run to run here). Only for
    the span where autocast is on: outside it an fp32 adapter needs its input cast. Not for DoRA, whose
    magnitude path uses the input outside a matmul (its loss then differs in the last bits)."""
    if precision == "fp32" or getattr(model, "peft_config", None) is None:
        return contextlib.nullcontext()
    if getattr(model.active_peft_config, "use_dora", False):
        return contextlib.nullcontext()
    from peft.helpers import disable_input_dtype_casting

    return disable_input_dtype_casting(model)
