"""Batching rendered examples and measuring answer-token loss: shared by validation and perplexity.

Labels are -100 wherever the renderer's mask says "not trained" and on padding, decided by *position*:
padding is whatever lies past an example's length, so a pad id equal to eos never hides a real eos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from r1tune.models.chat_format import Rendered
from r1tune.models.precision import Precision, autocast

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

IGNORE_INDEX = -100


def collate(examples: Sequence[Rendered], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; returns input_ids, attention_mask and labels (answer tokens only)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids, attention, labels = [], [], []
    for e in examples:
        pad = width - len(e.input_ids)
        ids.append(e.input_ids + [pad_id] * pad)
        attention.append([1] * len(e.input_ids) + [0] * pad)
        labels.append([t if keep else IGNORE_INDEX for t, keep in zip(e.input_ids, e.trained, strict=True)]
                      + [IGNORE_INDEX] * pad)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(attention),
        "labels": torch.tensor(labels),
    }


def summed_token_nll(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of next-token negative log-likelihood over labelled positions, and how many there were."""
    import torch.nn.functional as F

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1, :].float()  # (B, T-1, V): position t predicts token t+1
    targets = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                          ignore_index=IGNORE_INDEX, reduction="sum")
    return nll, int((targets != IGNORE_INDEX).sum())


@dataclass
class LossSummary:
    mean_nll: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll) if self.tokens else float("nan")


def answer_loss(
    model: PreTrainedModel, examples: Sequence[Rendered], pad_id: int, batch_size: int = 8,
    precision: Precision = "fp32",
) -> LossSummary:
    """Mean answer-token NLL over `examples` (token-weighted, so long answers count per token)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    ordered = sorted(examples, key=lambda e: len(e.input_ids))
    with torch.no_grad(), autocast(precision):
        for start in range(0, len(ordered), batch_size):
            nll, n = summed_token_nll(model, collate(ordered[start : start + batch_size], pad_id))
            total += float(nll)
            count += n
    model.train(was_training)
    return LossSummary(total / count if count else float("nan"), count)
