"""Attention while training on a CPU in bf16: PyTorch's flash kernel forward in bf16, its backward in fp32.

PyTorch 2.13's CPU flash-attention backward is slower in bf16 than in fp32, most of all for short rows
(measured here, 9 heads of 64, fwd+bwd per layer: 16x100 tokens 32-52 ms in bf16 against 13-18 ms with this
split; 4x420 tokens 33-46 against 27-41), while its bf16 forward is the faster one. This attention function
runs the same kernel's forward on the bf16 inputs (its output is bit-identical to SDPA's) and, for the
gradients, the kernel's backward on those inputs cast to fp32 exactly, so the gradients are at least as
accurate as SDPA's bf16 backward. It is registered with transformers' AttentionInterface (and the SDPA mask
builder) under `CPU_BF16_TRAINING` and switched on only for the span of a training loop on a CPU in bf16
whose model uses SDPA; anything else (no gradient, dropout, a KV cache, another dtype) goes to transformers'
own SDPA function unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any

CPU_BF16_TRAINING = "r1tune_sdpa_cpu_fp32_backward"


def _float_mask(mask: Any, dtype: Any) -> Any:
    """The additive mask the flash kernel takes (it refuses booleans): 0 where attended, -inf elsewhere."""
    import torch

    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


@cache
def _flash_bf16_forward_fp32_backward() -> Any:
    """The autograd Function, built on first use so that importing this module does not import torch."""
    import torch

    kernels = torch.ops.aten

    class FlashFp32Backward(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, mask: Any, causal: bool, scale: float | None) -> Any:
            out, logsumexp = kernels._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, causal, attn_mask=_float_mask(mask, q.dtype), scale=scale)
            ctx.save_for_backward(q, k, v, out, logsumexp, mask)
            ctx.causal, ctx.scale = causal, scale
            return out

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> tuple[Any, ...]:
            q, k, v, out, logsumexp, mask = ctx.saved_tensors
            grads = kernels._scaled_dot_product_flash_attention_for_cpu_backward(
                grad_out.float(), q.float(), k.float(), v.float(), out.float(), logsumexp, 0.0, ctx.causal,
                attn_mask=_float_mask(mask, torch.float32), scale=ctx.scale)
            wanted = ctx.needs_input_grad[:3]
            return (*(g.to(t.dtype) if want else None for g, t, want in zip(grads, (q, k, v), wanted, strict=True)),
                    None, None, None)

    return FlashFp32Backward


def _splits_backward(query: Any, key: Any, value: Any, dropout: float, kwargs: dict[str, Any]) -> bool:
    import torch

    return (query.device.type == "cpu" and query.dtype == torch.bfloat16 and torch.is_grad_enabled()
            and any(t.requires_grad for t in (query, key, value))
            and dropout == 0.0 and query.shape[2] == key.shape[2]
            and kwargs.get("softcap") is None and not kwargs.get("output_attentions"))


def sdpa_cpu_fp32_backward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                           dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None,
                           **kwargs: Any) -> tuple[Any, None]:
    """A transformers attention function: (B, H, T, D) inputs, returns ((B, T, H, D) output, None)."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if not _splits_backward(query, key, value, dropout, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    causal = attention_mask is None and (is_causal if is_causal is not None else getattr(module, "is_causal", True))
    out = _flash_bf16_forward_fp32_backward().apply(query, key, value, attention_mask, bool(causal), scaling)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `CPU_BF16_TRAINING` a valid attention implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CPU_BF16_TRAINING, sdpa_cpu_fp32_backward)
    AttentionMaskInterface.register(CPU_BF16_TRAINING, sdpa_mask)


@contextlib.contextmanager
def training_attention(model: Any, precision: str, device_type: str) -> Iterator[str | None]:
    """For a training loop: on a CPU in bf16, a model on SDPA attends with `CPU_BF16_TRAINING`, and gets
    its own implementation back afterwards. Yields the implementation trained with (None: unchanged)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    own = getattr(config, "_attn_implementation", None)
    if not (precision == "bf16" and device_type == "cpu" and own == "sdpa"
            and hasattr(inner, "set_attn_implementation")):
        yield None
        return
    register()
    inner.set_attn_implementation(CPU_BF16_TRAINING)
    try:
        yield CPU_BF16_TRAINING
    finally:
        inner.set_attn_implementation(own)
