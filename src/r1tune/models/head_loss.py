"""The answer tokens' summed cross-entropy through a frozen LM head, a block of rows at a time.

Adapter methods leave the LM head frozen, so the only gradient its loss sends back is the one for the
hidden states: (softmax - target) @ W. Computing it in the same pass as the loss, block by block, means
the (N, V) logits, their fp32 copy, the log-softmax autograd keeps and the logits' gradient never exist
whole (for 868 answer tokens and SmolLM2's 49k vocabulary each is 85-170 MB). On this 2-core CPU the head's
loss and backward for such a batch took ~370 ms against ~600 ms through `F.cross_entropy` on full logits
(3 alternating rounds), the loss equal to within float rounding. Libraries that fuse this (Liger's
fused linear cross-entropy) are CUDA/Triton only. A trainable head (full fine-tuning) takes the plain path.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# fp32 logits per block: ~130 rows of a 49k vocabulary on a CPU (blocks of 32-256 rows timed alike here).
# On a GPU a block this size keeps its kernels large, while the whole (N, V) logits of a long batch
# (8x4096 tokens x R1's 152k vocabulary: 20 GB in fp32) never exist.
BLOCK_BYTES = {"cpu": 25 << 20, "cuda": 1 << 30}


def block_rows(vocab: int, device_type: str) -> int:
    return max(1, BLOCK_BYTES.get(device_type, BLOCK_BYTES["cpu"]) // (4 * vocab))


def is_frozen_plain_head(head: Any) -> bool:
    """A bias-free linear head whose weight does not train and is a whole local tensor (not a DeepSpeed
    ZeRO-3 partition or a DTensor shard, which only the module's own forward gathers)."""
    import torch

    weight = getattr(head, "weight", None)
    return (isinstance(head, torch.nn.Linear) and head.bias is None and weight is not None
            and not weight.requires_grad and type(weight.data) is torch.Tensor and not hasattr(weight, "ds_id"))


def frozen_head_cross_entropy(hidden: Any, weight: Any, targets: Any, label_smoothing: float = 0.0) -> Any:
    """sum over rows of cross_entropy(hidden @ weight.T, targets), with `F.cross_entropy`'s label smoothing;
    differentiable in `hidden` only. Matmuls run in the autocast dtype when autocast is on."""
    dtype = _compute_dtype(hidden)
    return _function().apply(hidden, weight.to(dtype), targets, float(label_smoothing))


def _compute_dtype(hidden: Any) -> Any:
    import torch

    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype


def _block_loss_and_grad(logits: Any, targets: Any, smoothing: float, want_grad: bool) -> tuple[Any, Any]:
    """(summed loss, d loss / d logits or None) of one block of fp32 logits; the logits are overwritten."""
    import torch

    log_probs = torch.log_softmax(logits, dim=-1)
    rows = torch.arange(targets.numel(), device=logits.device)
    loss = -(1 - smoothing) * log_probs[rows, targets].sum()
    if smoothing:
        loss = loss - smoothing * log_probs.mean(dim=-1).sum()
    if not want_grad:
        return loss, None
    grad = log_probs.exp_()
    grad[rows, targets] -= 1 - smoothing
    if smoothing:
        grad -= smoothing / logits.size(-1)
    return loss, grad


@cache
def _function() -> Any:
    """The autograd Function, built once on first use (importing this module does not import torch)."""
    import torch

    class FrozenHeadCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, smoothing: float) -> Any:
            want_grad = ctx.needs_input_grad[0]
            h = hidden.to(weight.dtype)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_hidden = torch.empty_like(h) if want_grad else None
            with torch.autocast(hidden.device.type, enabled=False):
                rows = block_rows(weight.size(0), hidden.device.type)
                for start in range(0, h.size(0), rows):
                    block = slice(start, start + rows)
                    logits = (h[block] @ weight.T).float()
                    loss, grad = _block_loss_and_grad(logits, targets[block], smoothing, want_grad)
                    total += loss
                    if grad is not None:
                        grad_hidden[block] = grad.to(weight.dtype) @ weight
            ctx.save_for_backward(grad_hidden)
            ctx.hidden_dtype = hidden.dtype
            return total

        @staticmethod
        def backward(ctx: Any, grad_total: Any) -> tuple[Any, ...]:
            (grad_hidden,) = ctx.saved_tensors
            return (grad_hidden.float() * grad_total).to(ctx.hidden_dtype), None, None, None

    return FrozenHeadCrossEntropy
