"""Preference training (`train.stage: dpo | kto`): the units a step trains and their losses.

A unit is one trained answer with what the stage compares it to: a DPO pair (chosen + rejected answer), a
KTO answer (thumbs up or down), or a plain answer (replay data, corrections without a served answer) that
keeps its per-token NLL, so a run mixes all three and each unit weighs the same in a step.

The reference policy is the starting weights: their answer log-probabilities are computed once, before the
first step (a fresh LoRA adapter starts at zero, so that is the base; with `train.init_from` it is the
version being continued). That costs one forward pass per answer instead of a second model in memory, and
a resumed run recomputes them from the same starting weights.

r1tune computes these losses itself instead of calling TRL's DPOTrainer/KTOTrainer: those render through the
tokenizer's chat template with their own collator, which would lose the renderer's answer-only masks and R1
reasoning rendering (the chosen and rejected spans here are exactly the answers' tokens, tested), and they
bypass the recipe's resume, distributed and checkpoint path. The losses follow the papers' formulas (tested
against hand computation); KTO's reference point is the micro-batch's mean reward clamped at zero and
detached, a simplification of the paper's estimate from mismatched prompt-answer pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from r1tune.data.records import Message, Record
from r1tune.models.chat_format import ChatRenderer, Rendered
from r1tune.models.precision import Precision
from r1tune.models.scoring import collate, per_example_nll, row_nll
from r1tune.train.batching import MicroBatch, trained_targets

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

UnitKind = Literal["pair", "kto", "sft"]
KIND_CODES = {"sft": 0, "pair": 1, "kto": 2}


@dataclass
class PreferenceUnit:
    """One trained answer (`chosen`) and what its stage compares it with."""

    chosen: Rendered
    rejected: Rendered | None = None  # a DPO pair's other answer
    desirable: bool | None = None  # KTO: thumbs up (True) or down (False)
    ref_chosen: float = 0.0  # the starting weights' summed answer log-probability
    ref_rejected: float = 0.0

    @property
    def kind(self) -> UnitKind:
        if self.rejected is not None:
            return "pair"
        return "kto" if self.desirable is not None else "sft"


def build_units(stage: str, renderer: ChatRenderer, records: Sequence[Record], examples: Sequence[Rendered],
                kept: Sequence[int], max_len: int) -> tuple[list[PreferenceUnit], list[int]]:
    """Units for the rendered `examples` (record indices `kept`), and each unit's record index: a
    `meta.rejected` answer makes a DPO pair (under `kto`: one desirable and one undesirable unit), a boolean
    `meta.kto_label` a KTO unit (under `dpo`: a plain answer, as KTO labels carry no pair)."""
    units: list[PreferenceUnit] = []
    unit_records: list[int] = []
    for example, index in zip(examples, kept, strict=True):
        record = records[index]
        rejected = _render_rejected(renderer, record, max_len)
        label = record.meta.get("kto_label")
        if stage == "dpo":
            new = [PreferenceUnit(example, rejected=rejected)]
        elif rejected is not None:
            new = [PreferenceUnit(example, desirable=True), PreferenceUnit(rejected, desirable=False)]
        else:
            new = [PreferenceUnit(example, desirable=label if isinstance(label, bool) else None)]
        units += new
        unit_records += [index] * len(new)
    counts = {kind: sum(u.kind == kind for u in units) for kind in ("pair", "kto", "sft")}
    log.info("train.stage %s: %d preference pairs, %d thumbs-rated answers, %d plain answers", stage,
             counts["pair"], counts["kto"], counts["sft"])
    return units, unit_records


def _render_rejected(renderer: ChatRenderer, record: Record, max_len: int) -> Rendered | None:
    """The rejected answer rendered exactly as the chosen one (same prompt, same masks), or None."""
    text = record.meta.get("rejected")
    if not isinstance(text, str) or not text.strip():
        return None
    rendered = renderer.render_training(Record([*record.prompt_messages, Message("assistant", text)]), max_len)
    if trained_targets(rendered) == 0:
        log.warning("%s: the rejected answer keeps no token after truncation; the record trains as a plain answer",
                    record.source or record.id)
        return None
    return rendered


def add_reference_logps(model: Any, units: list[PreferenceUnit], pad_id: int, batch_size: int,
                        precision: Precision) -> None:
    """Record the current (starting) weights' summed answer log-probabilities on every unit."""
    for unit, (chosen, rejected) in zip(units, answer_logps(model, units, pad_id, batch_size, precision), strict=True):
        unit.ref_chosen = chosen
        if rejected is not None:
            unit.ref_rejected = rejected


def answer_logps(model: Any, units: Sequence[PreferenceUnit], pad_id: int, batch_size: int,
                 precision: Precision) -> list[tuple[float, float | None]]:
    """Per unit, the model's summed log-probability of its chosen answer and of its rejected one (None
    without), scored in one batched pass."""
    answers = [u.chosen for u in units] + [u.rejected for u in units if u.rejected is not None]
    logps = [-nll for nll, _ in per_example_nll(model, answers, pad_id, batch_size, precision)]
    rejected = iter(logps[len(units):])
    return [(logp, next(rejected) if u.rejected is not None else None) for u, logp in zip(units, logps, strict=False)]


def collate_units(batch: MicroBatch, units: Sequence[PreferenceUnit], pad_id: int) -> dict[str, torch.Tensor]:
    """One padded batch of every unit's chosen answer followed by the pairs' rejected answers, with each
    unit's kind, KTO label and reference log-probabilities."""
    import torch

    chosen = [units[row[0]] for row in batch]
    pairs = [u for u in chosen if u.rejected is not None]
    tensors = collate([u.chosen for u in chosen] + [u.rejected for u in pairs], pad_id)
    tensors["kind"] = torch.tensor([KIND_CODES[u.kind] for u in chosen])
    tensors["desirable"] = torch.tensor([bool(u.desirable) for u in chosen])
    tensors["ref_chosen"] = torch.tensor([u.ref_chosen for u in chosen], dtype=torch.float64)
    tensors["ref_rejected"] = torch.tensor([u.ref_rejected for u in chosen], dtype=torch.float64)
    return tensors


def preference_losses(logp: torch.Tensor, tokens: torch.Tensor, batch: dict[str, torch.Tensor], beta: float,
                      sft_weight: float) -> torch.Tensor:
    """Per-unit losses from the policy's summed answer log-probabilities `logp` (chosen rows, then the pairs'
    rejected rows) and answer token counts: DPO `-log σ(β((π_c-ref_c) - (π_r-ref_r)))` plus `sft_weight` x
    the chosen per-token NLL; KTO `1 - σ(β(r - z))` for desirable answers and `1 - σ(β(z - r))` for
    undesirable ones, r = π - ref, z = the batch's mean r clamped at 0 (no gradient); plain answers their
    per-token NLL."""
    import torch
    import torch.nn.functional as F

    kind = batch["kind"]
    n = kind.numel()
    chosen, chosen_tokens = logp[:n], tokens[:n].clamp(min=1)
    reward = chosen - batch["ref_chosen"].to(chosen.dtype)
    loss = -chosen / chosen_tokens  # plain answers: per-token NLL
    is_pair = kind == KIND_CODES["pair"]
    if is_pair.any():
        rejected = torch.zeros_like(chosen)
        rejected[is_pair] = logp[n:]
        margin = reward - (rejected - batch["ref_rejected"].to(chosen.dtype))
        loss = torch.where(is_pair, -F.logsigmoid(beta * margin) + sft_weight * loss, loss)
    is_kto = kind == KIND_CODES["kto"]
    if is_kto.any():
        z = reward[is_kto].mean().clamp(min=0).detach()
        towards = torch.where(batch["desirable"], reward - z, z - reward)
        loss = torch.where(is_kto, 1 - torch.sigmoid(beta * towards), loss)
    return loss


def preference_accuracy(units: Sequence[PreferenceUnit], model: Any, pad_id: int, batch_size: int,
                        precision: Precision) -> float | None:
    """Share of DPO pairs whose chosen answer gained more log-probability than the rejected one since the
    start (the implicit reward's accuracy, as TRL logs it), or None without pairs."""
    pairs = [u for u in units if u.rejected is not None]
    if not pairs:
        return None
    scored = answer_logps(model, pairs, pad_id, batch_size, precision)
    wins = sum(chosen - u.ref_chosen > rejected - u.ref_rejected for u, (chosen, rejected) in zip(pairs, scored, strict=True))
    return wins / len(pairs)


def summed_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed answer log-probability, answer tokens) per row."""
    nll, tokens = row_nll(model, batch)
    return -nll, tokens

