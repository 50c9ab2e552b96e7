"""The training loss as a module, so DDP / FSDP / DeepSpeed wrap the whole computation (their gradient
hooks need the forward to run through the wrapper, and the loss reaches past the model's own forward)."""

from __future__ import annotations

from typing import Any

import torch

from r1tune.models.scoring import summed_token_nll


class AnswerObjective(torch.nn.Module):
    """Summed next-token NLL (with optional label smoothing) on the labelled positions of a batch."""

    def __init__(self, model: Any, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing
        # FSDP's transformer auto-wrap looks for the block classes here.
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        nll, _ = summed_token_nll(self.model, batch, self.label_smoothing)
        return nll
