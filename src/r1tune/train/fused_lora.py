"""LoRA layers whose adapter update is added to the frozen layer's output inside one matmul.

peft's LoRA Linear computes `base(x) + lora_B(lora_A(x)) * scaling`: a full-width output from lora_B, a
full-width multiply by the scaling and a full-width add, each a pass over the layer's whole output (and a
full-width multiply again in the backward pass). `addmm(base(x), lora_A(x), B.T, alpha=scaling)` folds the
scale and the sum into lora_B's matmul, whose backward scales only the rank-wide gradient. On this project's
2-core CPU, LoRA r16 forward+backward on SmolLM2-135M (16 of bench-peer's batches, 3 rounds, the two forwards
interleaved batch by batch) took 127.4 s against 131.3 s with peft's forward (3% less; each round agreed).
Under bf16 autocast the sum is rounded once instead of three times, so losses differ from peft's in the
last bits.

peft's experimental custom-layer registration (`LoraConfig._register_custom_module`) builds these layers in
place of its own Linear; their parameters, state-dict keys and saved adapters are peft's own, so everything
that loads an adapter (eval, serve, export, merge) reads what they save unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora.layer import Linear as LoraLinear


class FusedAddLoraLinear(LoraLinear):
    """peft's LoRA Linear with the adapter's update fused into lora_B's matmul when that computes peft's sum
    (up to rounding): one active plain-LoRA adapter (no DoRA or other variant), no dropout, not merged, no
    per-call adapter routing. Anything else goes through peft's own forward."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        adapter = self._fusable_adapter(x, args, kwargs)
        if adapter is None:
            return super().forward(x, *args, **kwargs)
        result = self.base_layer(x)
        low = self.lora_A[adapter](x)
        width = result.shape[-1]
        fused = torch.addmm(result.reshape(-1, width), low.reshape(-1, low.shape[-1]),
                            self.lora_B[adapter].weight.t(), alpha=self.scaling[adapter])
        return fused.view(result.shape)

    def _fusable_adapter(self, x: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
        """The active adapter when the fused sum computes what peft's forward does, else None. Dtypes: under
        autocast the matmuls cast their operands themselves; without it, input, adapter and base must agree
        (peft would otherwise cast the input to the adapter's dtype and the sum to the base's)."""
        if args or kwargs or self.disable_adapters or self.merged or len(self.active_adapters) != 1:
            return None
        adapter = self.active_adapters[0]
        if adapter not in self.lora_A or adapter in self.lora_variant:
            return None
        if not isinstance(self.lora_dropout[adapter], torch.nn.Identity):
            return None
        if self.lora_B[adapter].bias is not None:
            return None
        lora_B = self.lora_B[adapter].weight
        # DeepSpeed ZeRO-3 gathers a partitioned weight only inside its own module's forward; lora_B's is
        # read here outside that forward.
        if hasattr(lora_B, "ds_id"):
            return None
        if torch.is_autocast_enabled(x.device.type):
            return adapter
        base = getattr(self.get_base_layer(), "weight", None)
        same = base is not None and x.dtype == self.lora_A[adapter].weight.dtype == lora_B.dtype == base.dtype
        return adapter if same else None


def use_fused_layers(config: Any) -> Any:
    """Have peft build `FusedAddLoraLinear` for the plain `torch.nn.Linear` layers this LoRA config targets.
    Not for quantized bases: bitsandbytes' 4-bit and 8-bit layers subclass nn.Linear and need peft's own."""
    config._register_custom_module({torch.nn.Linear: FusedAddLoraLinear})
    return config
