"""Linear layers with their bf16 weights pre-packed for oneDNN, for inference on the CPU.

Why: `F.linear` with bf16 weights hands oneDNN a plain row-major weight, which it re-orders into its blocked
layout on every call. For decoding, where each call multiplies only a few rows, that re-ordering is most
of the work. Packing each weight once (`mkldnn._reorder_linear_weight`, the call PyTorch's own inductor
uses when it freezes a model for the CPU) and calling `mkldnn._linear_pointwise` gives bit-identical
outputs at about half the time. Measured on this 2-core AMX CPU, 1 torch thread, all 211 linear layers of
SmolLM2-135M with separate weights: 30.4 ms → 15.9 ms for 1 row, 40.6 → 21.9 ms for 16 rows,
519 → 448 ms for 640 rows (a prefill), with `torch.equal` outputs at every size.

The cost is memory: the packed copy sits beside the original weight (kept because PEFT reads the base
layer's weight to attach adapters, and training code may read it), so a packed model's linear weights
take twice their size. Packing is for serving and evaluation decoding, never for training: a layer whose
input needs a gradient falls back to `F.linear`.

These ops are private to PyTorch, so `pack_linear_layers` checks them first: on a build without them, or
where a packed layer's output differs from `F.linear` by a single bit, nothing is packed.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)


class PackedLinear(nn.Linear):
    """An `nn.Linear` (so PEFT still wraps it in LoRA layers) that multiplies with a pre-packed weight."""

    def __init__(self, linear: nn.Linear, packed_weight: torch.Tensor) -> None:
        nn.Module.__init__(self)  # not nn.Linear.__init__: that would allocate a fresh weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # the same Parameter, not a copy
        self.bias = linear.bias
        self.register_buffer("packed_weight", packed_weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.packed_weight.dtype or (torch.is_grad_enabled() and x.requires_grad):
            return F.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")


def packing_supported() -> bool:
    """True where this PyTorch build has oneDNN with bf16 support and the packing ops."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return (
        torch.backends.mkldnn.is_available()
        and mkldnn is not None
        and hasattr(mkldnn, "_reorder_linear_weight")
        and hasattr(mkldnn, "_linear_pointwise")
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def pack_linear_layers(model: nn.Module) -> int:
    """Replace every bf16 `nn.Linear` on the CPU in `model` by a `PackedLinear`; returns how many.

    Call it on the bare model before adapters are attached: adapter layers loaded later stay plain
    (they are small), while their base layers stay packed. Returns 0, changing nothing, where packing is
    unsupported or does not reproduce `F.linear` exactly."""
    if not packing_supported():
        log.info("not packing linear layers: this PyTorch build lacks oneDNN bf16 packing")
        return 0
    targets = [(name, module) for name, module in model.named_modules()
               if type(module) is nn.Linear and module.weight.dtype == torch.bfloat16
               and module.weight.device.type == "cpu"]
    if not targets or not _reproduces_linear(targets[0][1]):
        return 0
    with torch.no_grad():
        for name, linear in targets:
            packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)
            _set_submodule(model, name, PackedLinear(linear, packed))
    extra = sum(linear.weight.numel() * linear.weight.element_size() for _, linear in targets)
    log.info("packed %d linear layers for oneDNN (+%.0f MB)", len(targets), extra / 2**20)
    return len(targets)


def _reproduces_linear(linear: nn.Linear) -> bool:
    """Whether the packed multiplication gives exactly `F.linear`'s result for a few batch shapes."""
    generator = torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)
            for rows in (1, 5):
                x = torch.randn(rows, linear.in_features, generator=generator).to(linear.weight.dtype)
                got = torch.ops.mkldnn._linear_pointwise(x, packed, linear.bias, "none", [], "")
                if not torch.equal(got, F.linear(x, linear.weight, linear.bias)):
                    log.warning("not packing linear layers: oneDNN's packed result differs from F.linear")
                    return False
    except RuntimeError as err:
        log.warning("not packing linear layers: %s", str(err).splitlines()[0])
        return False
    return True


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent: Any = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)
