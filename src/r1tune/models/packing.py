"""Linear layers with their bf16 weights pre-packed for oneDNN, for inference on the CPU.

Why: `F.linear` with bf16 weights hands oneDNN a plain row-major weight, which it re-orders into its blocked
layout on every call. For decoding, where each call multiplies only a few rows, that re-ordering is most
of the work. Packing each weight once (`mkldnn._reorder_linear_weight`, the call PyTorch's own inductor
uses when it freezes a model for the CPU) and calling `mkldnn._linear_pointwise` gives bit-identical
outputs at about half the time. Measured on this 2-core AMX CPU, 1 torch thread, all 211 linear layers of
SmolLM2-135M with separate weights: 30.4 ms → 15.9 ms for 1 row, 40.6 → 21.9 ms for 16 rows,
519 → 448 ms for 640 rows (a prefill), with `torch.equal` outputs at every size.

Two uses:
- `pack_linear_layers(model)`: for serving, permanently, on a model loaded with bf16 weights.
- `packed_for_autocast(model)`: for evaluation decoding, temporarily, on a training model (fp32 weights)
  run under bf16 autocast. Autocast casts every fp32 weight to bf16 on every call; the packed copy is cast
  once, and the layer's input is cast to bf16 the way autocast would, so the results are again identical.

The cost is memory: the packed copy sits beside the original weight (kept because PEFT reads the base
layer's weight to attach adapters, and training code may read it). Packing is for inference only: where
autograd is on and the input or the weight needs a gradient, a layer falls back to `F.linear`.

These ops are private to PyTorch, so `pack_linear_layers` checks them first: on a build without them, or
where a packed layer's output differs from `F.linear` by a single bit, nothing is packed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
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
        packed_bias = None if linear.bias is None else linear.bias.detach().to(packed_weight.dtype)
        self.register_buffer("packed_bias", packed_bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.packed_weight.dtype
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return F.linear(x, self.weight, self.bias)  # training: the packed copy has no gradient
        if x.dtype != dtype:
            if not _autocasts_to(dtype):
                return F.linear(x, self.weight, self.bias)
            x = x.to(dtype)  # what autocast does to a linear layer's input
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.packed_bias, "none", [], "")


def _autocasts_to(dtype: torch.dtype) -> bool:
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype


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
    return len(_pack(model, source_dtypes=(torch.bfloat16,)))


@contextlib.contextmanager
def packed_for_autocast(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Inside, every fp32 or bf16 `nn.Linear` on the CPU runs on a packed bf16 copy of its weight when
    called under bf16 autocast (the same numbers as autocast, see the module docstring); on leaving, the
    original layers are back. Yields how many layers were packed (0 where unsupported or not `enabled`).
    Pack after merging an adapter into the weights, not before: the copy does not follow later changes."""
    originals = _pack(model, source_dtypes=(torch.float32, torch.bfloat16)) if enabled else {}
    try:
        yield len(originals)
    finally:
        for name, linear in originals.items():
            _set_submodule(model, name, linear)


def _pack(model: nn.Module, source_dtypes: tuple[torch.dtype, ...]) -> dict[str, nn.Linear]:
    """Swap in `PackedLinear`s (bf16 packed weights); returns the replaced layers by name."""
    if not packing_supported():
        log.info("not packing linear layers: this PyTorch build lacks oneDNN bf16 packing")
        return {}
    targets = {name: module for name, module in model.named_modules()
               if type(module) is nn.Linear and module.weight.dtype in source_dtypes
               and module.weight.device.type == "cpu"}
    if not targets or not _reproduces_linear(next(iter(targets.values()))):
        return {}
    with torch.no_grad():
        for name, linear in targets.items():
            packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().to(torch.bfloat16), 1)
            _set_submodule(model, name, PackedLinear(linear, packed))
    extra = sum(linear.weight.numel() * 2 for linear in targets.values())
    log.info("packed %d linear layers for oneDNN (+%.0f MB)", len(targets), extra / 2**20)
    return targets


def _reproduces_linear(linear: nn.Linear) -> bool:
    """Whether the packed multiplication gives exactly what bf16 `F.linear` (which is also what bf16
    autocast computes) gives, for a few batch shapes."""
    generator = torch.Generator().manual_seed(0)
    weight = linear.weight.detach().to(torch.bfloat16)
    bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
    try:
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
            for rows in (1, 5):
                x = torch.randn(rows, linear.in_features, generator=generator).to(torch.bfloat16)
                got = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
                if not torch.equal(got, F.linear(x, weight, bias)):
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
