"""Attention while training on a CPU in bf16, where PyTorch's SDPA kernels are slow for the short rows of
fine-tuning data.

Two paths, both registered with transformers' AttentionInterface (and the SDPA mask builder) under
`CPU_BF16_TRAINING` and switched on only for the span of a training loop on a CPU in bf16 whose model uses
SDPA; anything else (no gradient, dropout, a KV cache, another dtype) goes to transformers' own SDPA function.

- Rows whose attention probabilities fit `MATMUL_MAX_ELEMENTS` (B x heads x T x T) take matmuls: scores in
  fp32 (as the flash kernel accumulates them), an fp32 softmax, the probabilities kept in bf16 for the value
  product and the backward, whose matmuls run in bf16. Query heads that share a key/value head are one batched
  matmul, so keys and values are never repeated per head, and under a causal mask the query rows go in chunks
  that skip the hidden keys. PyTorch 2.13's CPU flash kernel spends most of its time outside its matmuls at
  these sizes: on this project's 2-core CPU, SmolLM2-135M's 9 heads of 64, forward + backward per layer took
  12.0 against 21.6 ms for 4 rows of 220 tokens and 5.4 against 15.0 ms for 8 of 110 in one chunk, and 19
  ms in chunks against 44-47 ms for 2 of 512; on 10 micro-batches of the bench-peer data, whole LoRA steps took
  26.6 s against 32.2 s through the flash path (medians of 3 alternating rounds). The errors against an fp32
  reference stay at bf16's level (tests/models/test_attention.py bounds them).
- Longer rows (whose probabilities would cost memory a flash kernel never spends) take the flash kernel's
  forward in bf16 and its backward on the same inputs cast to fp32. That backward was the faster one for 4 x
  420 tokens in earlier measurements here, but not for 2 x 512 in a later one, so which backward suits rows
  this long on a CPU is not settled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any

CPU_BF16_TRAINING = "r1tune_cpu_bf16_training"
# Probabilities (batch x heads x T x T) up to which the matmul path runs: 32 MB a layer in bf16, kept for the
# backward (SmolLM2-135M's 2 rows of 512 tokens take 4.7M; a 7B's 28 heads at 1 x 768 take 16.5M).
MATMUL_MAX_ELEMENTS = 1 << 24
CAUSAL_CHUNK_ROWS = 128  # query rows per matmul under a causal mask
# (what the bias was built from, (the bias, whether it hides later keys)): every layer shares one mask
_bias_cache: list[Any] = [None, None]


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


@cache
def _grouped_matmul_attention() -> Any:
    """The autograd Function of the matmul path: q (B, H, T, D), k and v (B, KV, T, D), an fp32 additive bias
    broadcastable to (B, H, T, T), and the query rows in `chunks` of (start, end): each chunk's rows meet
    only the keys before its end, which is exact when the bias hides every later key (causal masks), and
    skips the hidden upper triangle. Head h uses key/value head h // (H / KV), as in transformers' repeat_kv,
    so the query heads of one key/value head are the rows of one matmul."""
    import torch

    class GroupedMatmulAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, bias: Any, scale: float, chunks: list[tuple[int, int]]) -> Any:
            batch, heads, length, dim = q.shape
            kv_heads = k.size(1)
            q5, k3, v3 = _by_key_value_head(q, k, v)
            outs, probs = [], []
            for start, end in chunks:
                rows = q5[:, :, :, start:end].reshape(batch * kv_heads, -1, dim)
                scores = torch.bmm(rows.float(), k3[:, :end].transpose(1, 2).float())
                scores = scores.view(batch, heads, end - start, end).mul_(scale).add_(bias[..., start:end, :end])
                chunk_probs = torch.softmax(scores, dim=-1).to(q.dtype)
                out = torch.bmm(chunk_probs.view(batch * kv_heads, -1, end), v3[:, :end])
                outs.append(out.view(batch, kv_heads, -1, end - start, dim))
                probs.append(chunk_probs)
            ctx.save_for_backward(q, k, v, *probs)
            ctx.scale, ctx.chunks = scale, chunks
            return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=3)).view(q.shape)

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> tuple[Any, ...]:
            q, k, v, *probs = ctx.saved_tensors
            batch, _, _, dim = q.shape
            kv_heads = k.size(1)
            q5, k3, v3 = _by_key_value_head(q, k, v)
            g5 = grad_out.to(q.dtype).reshape(q5.shape)
            grad_q = torch.empty(q5.shape, dtype=q.dtype, device=q.device)
            grad_k, grad_v = (torch.zeros(k3.shape, dtype=torch.float32, device=k.device)  # summed over chunks
                              for _ in range(2))
            for (start, end), chunk_probs in zip(ctx.chunks, probs, strict=True):
                p = chunk_probs.view(batch * kv_heads, -1, end)
                g = g5[:, :, :, start:end].reshape(batch * kv_heads, -1, dim)
                grad_v[:, :end] += torch.bmm(p.transpose(1, 2), g)
                grad_probs = torch.bmm(g, v3[:, :end].transpose(1, 2))
                grad_scores = torch._softmax_backward_data(grad_probs, p, -1, p.dtype).mul_(ctx.scale)
                grad_q[:, :, :, start:end] = torch.bmm(grad_scores, k3[:, :end]).view(g5[:, :, :, start:end].shape)
                rows = q5[:, :, :, start:end].reshape(batch * kv_heads, -1, dim)
                grad_k[:, :end] += torch.bmm(grad_scores.transpose(1, 2), rows)
            grads = (grad_q.view(q.shape), grad_k.to(k.dtype).view(k.shape), grad_v.to(v.dtype).view(v.shape))
            return (*(g if want else None for g, want in zip(grads, ctx.needs_input_grad[:3], strict=True)),
                    None, None, None)

    return GroupedMatmulAttention


def _by_key_value_head(q: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
    """q as (B, KV, H / KV, T, D); k and v as (B * KV, T, D)."""
    batch, heads, length, dim = q.shape
    kv_heads = k.size(1)
    return (q.reshape(batch, kv_heads, heads // kv_heads, length, dim), k.reshape(batch * kv_heads, length, dim),
            v.reshape(batch * kv_heads, length, dim))


def _query_chunks(length: int, causal: bool) -> list[tuple[int, int]]:
    """Rows of CAUSAL_CHUNK_ROWS under a causal bias (on this CPU, forward + backward of 2 rows of 512 tokens
    took 19 against 48 ms in one chunk; 4 rows of 220: 10 against 17 ms), else all rows at once."""
    if not causal or length <= CAUSAL_CHUNK_ROWS:
        return [(0, length)]
    edges = [*range(0, length, CAUSAL_CHUNK_ROWS), length]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _additive_bias(mask: Any, length: int, causal: bool, device: Any) -> tuple[Any, bool]:
    """The fp32 bias the matmul path adds to its scores (0 where attended, -inf elsewhere), built once for
    the mask every layer of a forward shares, and whether it hides every key after its query (so the rows
    can go in chunks). The bias is None when some query row attends to nothing (its softmax would be NaN,
    where the flash kernel has its own convention)."""
    import torch

    source = mask if mask is not None else ("causal" if causal else "full", length)
    cached_source, cached = _bias_cache
    if cached_source is source or (isinstance(source, tuple) and isinstance(cached_source, tuple)
                                   and source == cached_source):
        return cached
    if mask is not None:
        bias = _float_mask(mask[..., :length], torch.float32)
    elif causal:
        bias = _float_mask(torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None],
                           torch.float32)
    else:
        bias = torch.zeros(1, 1, length, length, device=device)
    later = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    hides_later = bool(torch.isneginf(bias[..., later]).all())
    usable = None if torch.isneginf(bias).all(dim=-1).any() else bias
    _bias_cache[:] = [source, (usable, hides_later)]
    return usable, hides_later


def _splits_backward(query: Any, key: Any, value: Any, dropout: float, kwargs: dict[str, Any]) -> bool:
    import torch

    return (query.device.type == "cpu" and query.dtype == torch.bfloat16 and torch.is_grad_enabled()
            and any(t.requires_grad for t in (query, key, value))
            and dropout == 0.0 and query.shape[2] == key.shape[2]
            and kwargs.get("softcap") is None and not kwargs.get("output_attentions"))


def cpu_bf16_training_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                           dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None,
                           **kwargs: Any) -> tuple[Any, None]:
    """A transformers attention function: (B, H, T, D) inputs, returns ((B, T, H, D) output, None)."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if not _splits_backward(query, key, value, dropout, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    causal = attention_mask is None and (is_causal if is_causal is not None else getattr(module, "is_causal", True))
    batch, heads, length, dim = query.shape
    bias, hides_later = None, False
    if batch * heads * length * length <= MATMUL_MAX_ELEMENTS:
        bias, hides_later = _additive_bias(attention_mask, length, bool(causal), query.device)
    if bias is not None:
        scale = scaling if scaling is not None else dim**-0.5
        chunks = _query_chunks(length, hides_later)
        out = _grouped_matmul_attention().apply(query, key, value, bias, scale, chunks)
    else:
        groups = getattr(module, "num_key_value_groups", 1)
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
        out = _flash_bf16_forward_fp32_backward().apply(query, key, value, attention_mask, bool(causal), scaling)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `CPU_BF16_TRAINING` a valid attention implementation (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CPU_BF16_TRAINING, cpu_bf16_training_attention)
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
        _bias_cache[:] = [None, None]
