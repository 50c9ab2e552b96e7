"""The training loss as a module, so DDP / FSDP / DeepSpeed wrap the whole computation (their gradient
hooks need the forward to run through the wrapper, and the loss reaches past the model's own forward)."""

from __future__ import annotations

from typing import Any

import torch

from r1tune.models.scoring import labelled_logits, summed_divergence, summed_token_nll


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

    def tie_weights(self) -> None:
        """accelerate calls this after moving the module to the meta device to shard it (FSDP handing rank
        0's weights on): a tied head must be the embedding again, or the two would train apart."""
        if hasattr(self.model, "tie_weights"):
            self.model.tie_weights()


class DistillObjective(AnswerObjective):
    """Logit distillation: `alpha` x the answer NLL + (1 - alpha) x the divergence from a frozen teacher's
    next-token distributions on the same labelled positions (teacher and student share a tokenizer). The
    teacher runs in the same process, without gradients, in its own dtype."""

    def __init__(self, model: Any, teacher: Any, alpha: float, divergence: str, temperature: float,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(model, label_smoothing)
        self.teacher = [teacher]  # in a list: not a submodule, so no wrapper shards, syncs or saves it
        self.alpha, self.divergence, self.temperature = alpha, divergence, temperature

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        import torch.nn.functional as F

        student, targets, _ = labelled_logits(self.model, batch)
        with torch.no_grad():
            teacher, _, _ = labelled_logits(self.teacher[0], batch)
        nll = F.cross_entropy(student.float(), targets, reduction="sum", label_smoothing=self.label_smoothing)
        kl = summed_divergence(student, teacher.to(student.device), self.divergence, self.temperature)
        return self.alpha * nll + (1 - self.alpha) * kl


class PreferenceObjective(AnswerObjective):
    """`train.stage: dpo | kto`: the summed per-unit losses of `train.preference` (every unit weighs one)."""

    def __init__(self, model: Any, beta: float, sft_weight: float) -> None:
        super().__init__(model)
        self.beta, self.sft_weight = beta, sft_weight

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from r1tune.train.preference import preference_losses, summed_logps

        logp, tokens = summed_logps(self.model, batch)
        return preference_losses(logp, tokens, batch, self.beta, self.sft_weight).sum()
