"""Batching rendered examples and measuring answer-token loss: shared by training, validation and perplexity.

Labels are -100 wherever the renderer's mask says "not trained" and on padding, decided by *position*:
padding is whatever lies past an example's length, so a pad id equal to eos never hides a real eos.

The vocabulary projection runs only where a label is: the decoder's hidden states at the labelled positions
go through the LM head, instead of projecting every position and discarding most of the logits. With
SmolLM2's 49k vocabulary the head is a fifth of the model's matmul work per position, and the full
(B, T, V) fp32 logits of one 8x512 batch are 800 MB; prompts and padding are about half the positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r1tune.models.chat_format import Rendered
from r1tune.models.device import model_device, on_device
from r1tune.models.precision import Precision, autocast

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

IGNORE_INDEX = -100
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def collate(examples: Sequence[Rendered], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; returns input_ids, attention_mask, labels (answer tokens only) and their
    `label_index`, on the CPU: whoever feeds it to a model moves it there (`models.device.on_device`)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids, attention, labels = [], [], []
    for e in examples:
        pad = width - len(e.input_ids)
        ids.append(e.input_ids + [pad_id] * pad)
        attention.append([1] * len(e.input_ids) + [0] * pad)
        labels.append(example_labels(e) + [IGNORE_INDEX] * pad)
    return with_label_index({
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(attention),
        "labels": torch.tensor(labels),
    })


def with_label_index(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`batch` (on the CPU) plus `label_index`: the flat (B*T) positions whose next token is a label, in
    row-major order. Taken here from the CPU labels because selecting them on a GPU with a boolean mask
    makes the host wait for the forward pass queued before it, once per micro-batch."""
    labels = batch["labels"]
    follows_label = labels[:, 1:] != IGNORE_INDEX
    rows, columns = follows_label.nonzero(as_tuple=True)
    return {**batch, "label_index": rows * labels.size(1) + columns}


def example_labels(example: Rendered) -> list[int]:
    """The example's ids where trained, IGNORE_INDEX elsewhere."""
    return [t if keep else IGNORE_INDEX for t, keep in zip(example.input_ids, example.trained, strict=True)]


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """The (decoder, lm_head) of a causal LM, looking through a PEFT wrapper, or None when the logits must
    come from the model's own forward: prefix/prompt tuning add their virtual tokens there, and some
    architectures post-process logits (soft-capping, scaling)."""
    if getattr(model, "peft_config", None) is not None:
        if model.active_peft_config.is_prompt_learning:
            return None
        model = model.get_base_model()
    config = getattr(model, "config", None)
    if config is None or any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale")):
        return None
    head = model.get_output_embeddings()
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if head is None or decoder is None or decoder is model:
        return None
    return decoder, head


def labelled_logits(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 torch.Tensor]:
    """(logits at labelled positions (N, V), their target ids (N,), the batch row of each (N,)). The one
    place that lines logits up with labels: position t predicts token t+1."""
    hidden, head, targets, rows = labelled_hidden(model, batch)
    return (hidden if head is None else head(hidden)), targets, rows


def labelled_hidden(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any,
                                                                                     torch.Tensor, torch.Tensor]:
    """(the decoder's hidden states at labelled positions (N, H), the LM head, targets, rows), or, for a
    model whose logits must come from its own forward, (its logits there (N, V), None, targets, rows).
    Positions come from the batch's `label_index` (see `with_label_index`), so nothing here waits for the
    device."""
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    labels, index = batch["labels"], batch["label_index"]
    width = labels.size(1)
    targets, rows = labels.reshape(-1).index_select(0, index + 1), index.div(width, rounding_mode="floor")
    parts = decoder_and_head(model)
    if parts is not None:
        decoder, head = parts
        hidden = decoder(**inputs, use_cache=False).last_hidden_state  # (B, T, H)
        return hidden.reshape(-1, hidden.size(-1)).index_select(0, index), head, targets, rows
    logits = model(**inputs, use_cache=False).logits  # prompt tuning prepends virtual positions
    virtual = logits.size(1) - width
    at = index + rows * virtual + virtual
    return logits.reshape(-1, logits.size(-1)).index_select(0, at), None, targets, rows


def summed_token_nll(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0
) -> tuple[torch.Tensor, int]:
    """Sum of next-token negative log-likelihood over labelled positions, and how many there were (the
    training objective). `batch` holds input_ids and labels, plus attention_mask (padded batches) or
    position_ids (packed rows). A frozen LM head's loss is taken block by block (`models/head_loss.py`)."""
    import torch.nn.functional as F

    from r1tune.models.head_loss import frozen_head_cross_entropy, is_frozen_plain_head

    hidden, head, targets, _ = labelled_hidden(model, batch)
    if head is not None and is_frozen_plain_head(head):
        return frozen_head_cross_entropy(hidden, head.weight, targets, label_smoothing), targets.numel()
    logits = hidden if head is None else head(hidden)
    nll = F.cross_entropy(logits.float(), targets, reduction="sum", label_smoothing=label_smoothing)
    return nll, targets.numel()


def summed_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, divergence: str = "forward_kl",
                      temperature: float = 1.0) -> torch.Tensor:
    """Sum over positions of a divergence between the teacher's and the student's next-token distributions
    (rows of (N, V) logits at the same labelled positions), softened by `temperature` and scaled by its
    square so gradients keep their size (Hinton et al.):
    `forward_kl` = KL(teacher || student), mass-covering; `reverse_kl` = KL(student || teacher),
    mode-seeking; `jsd` = the Jensen-Shannon divergence (both against their even mixture)."""
    import math

    import torch.nn.functional as F

    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if divergence == "forward_kl":
        value = F.kl_div(log_s, log_t, log_target=True, reduction="sum")
    elif divergence == "reverse_kl":
        value = F.kl_div(log_t, log_s, log_target=True, reduction="sum")
    else:
        import torch

        log_m = torch.logsumexp(torch.stack([log_s, log_t]), dim=0) - math.log(2)
        value = 0.5 * (F.kl_div(log_m, log_t, log_target=True, reduction="sum")
                       + F.kl_div(log_m, log_s, log_target=True, reduction="sum"))
    return value * temperature**2


@dataclass
class LossSummary:
    mean_nll: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll) if self.tokens else float("nan")


def row_nll(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed answer-token NLL per row (B,), answer tokens per row (B,)) of a padded batch: what preference
    objectives compare between answers, and per-example perplexity splits by."""
    import torch
    import torch.nn.functional as F

    logits, targets, rows = labelled_logits(model, batch)
    token_nll = F.cross_entropy(logits.float(), targets, reduction="none")
    batch_size = batch["labels"].size(0)
    summed = torch.zeros(batch_size, device=token_nll.device, dtype=token_nll.dtype).index_add(0, rows, token_nll)
    return summed, torch.bincount(rows, minlength=batch_size)


def per_example_nll(
    model: PreTrainedModel, examples: Sequence[Rendered], pad_id: int, batch_size: int = 8,
    precision: Precision = "fp32",
) -> list[tuple[float, int]]:
    """(summed answer-token NLL, answer tokens) per example, in input order, with the training masking.
    Examples are batched by length (less padding)."""
    import torch

    was_training = model.training
    model.eval()
    device = model_device(model)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    with torch.no_grad(), autocast(precision, device.type):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            summed, counts = row_nll(model, on_device(collate([examples[i] for i in idx], pad_id), device))
            for i, nll, count in zip(idx, summed.tolist(), counts.tolist(), strict=True):
                out[i] = (nll, count)
    model.train(was_training)
    return out


def answer_loss(
    model: PreTrainedModel, examples: Sequence[Rendered], pad_id: int, batch_size: int = 8,
    precision: Precision = "fp32",
) -> LossSummary:
    """Mean answer-token NLL over `examples` (token-weighted, so long answers count per token): training
    validation, eval perplexity and any later gate all measure through `per_example_nll`."""
    rows = per_example_nll(model, examples, pad_id, batch_size, precision)
    total, count = sum(n for n, _ in rows), sum(t for _, t in rows)
    return LossSummary(total / count if count else float("nan"), count)
