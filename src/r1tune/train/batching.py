"""Which examples go into which micro-batch, epoch by epoch: packing, length grouping, curriculum.

The plan is a pure function of (examples, config, seed, epoch), so a resumed run recomputes exactly the
batches it would have seen, and every process of a distributed run agrees on them without talking.

Packing puts several examples in one row of up to `max_seq_len` tokens with position ids restarting at 0
for each; transformers turns restarting position ids (with no 2D attention mask) into a block-diagonal
causal mask for sdpa/eager attention and into varlen kernels for flash attention, so no token attends
across an example border (tests/train/test_batching.py proves the packed loss equals the unpacked one).
Without packing (the default), micro-batches group examples of similar length under a token budget of
`batch_size` average examples: short examples go many to a batch, long ones few, so little compute goes to
padding and memory per micro-batch stays bounded. Packs are built by best-fit decreasing. Both groupings are
built once and their order reshuffled every epoch, so every epoch has the same number of steps.

`batch_size` counts examples either way (on average), so the choice changes speed, not the number of
optimiser steps, and learning rates tuned one way still fit the other.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from r1tune.models.chat_format import Rendered
from r1tune.models.scoring import IGNORE_INDEX, collate, example_labels, with_label_index

if TYPE_CHECKING:
    import torch

# One micro-batch is a list of rows; a row is the indices of the examples it holds (one unless packed).
MicroBatch = list[list[int]]
Curriculum = Literal["none", "length", "difficulty"]
LENGTH_GROUP_WINDOW = 16  # batches sorted together: enough to pad little, few enough to stay random


def trained_targets(example: Rendered) -> int:
    """Positions that contribute to the loss: trained tokens after the first (nothing predicts token 0)."""
    return sum(example.trained[1:])


@dataclass
class BatchPlan:
    """The micro-batches of every epoch and how optimiser steps consume them."""

    examples: list[Rendered]
    batch_size: int
    micro_batches_per_step: int  # grad_accum x processes
    seed: int
    packing: bool
    max_seq_len: int
    curriculum_order: list[int] | None = None  # example indices, easiest first; None = shuffle

    def __post_init__(self) -> None:
        self._packs = self._build_packs() if self.packing else None
        self.rows_per_batch = self.batch_size
        if self._packs is not None:
            per_row = len(self.examples) / len(self._packs)
            self.rows_per_batch = max(1, round(self.batch_size / per_row))
        self._groups = None
        if not self.packing and self.curriculum_order is None:
            self._groups = self._length_groups()
        self.micro_batches_per_epoch = len(self.epoch(0))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.micro_batches_per_epoch / self.micro_batches_per_step)

    def epoch(self, epoch: int) -> list[MicroBatch]:
        """All micro-batches of one epoch, in order."""
        rng = random.Random(f"{self.seed}-epoch-{epoch}")
        if self._packs is not None:
            packs = list(self._packs)
            if self.curriculum_order is None:
                rng.shuffle(packs)
            rows = self.rows_per_batch
            return [packs[i : i + rows] for i in range(0, len(packs), rows)]
        if self.curriculum_order is not None:
            order = self.curriculum_order
            return [[[i] for i in order[k : k + self.batch_size]] for k in range(0, len(order), self.batch_size)]
        assert self._groups is not None
        groups = list(self._groups)
        rng.shuffle(groups)
        return [[[i] for i in group] for group in groups]

    def step(self, step: int) -> list[MicroBatch]:
        """The micro-batches of global optimiser step `step` (0-based), across all processes."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = within * self.micro_batches_per_step
        return self.epoch(epoch)[start : start + self.micro_batches_per_step]

    def fill_rate(self) -> float:
        """Share of the computed token positions that hold real (non-pad) tokens, over one epoch."""
        real = sum(len(e.input_ids) for e in self.examples)
        computed = 0
        for batch in self.epoch(0):
            widths = [sum(len(self.examples[i].input_ids) for i in row) for row in batch]
            computed += max(widths) * len(widths)
        return real / computed if computed else 0.0

    def _build_packs(self) -> list[list[int]]:
        if self.curriculum_order is not None:
            return next_fit_packs(self.curriculum_order, self.examples, self.max_seq_len)
        order = list(range(len(self.examples)))
        random.Random(f"{self.seed}-packing").shuffle(order)  # ties in length fall in random order
        return best_fit_decreasing_packs(order, self.examples, self.max_seq_len)

    def _length_groups(self) -> list[list[int]]:
        """Shuffle, sort windows of ~16 batches by length, cut each window into batches whose padded size
        stays within `batch_size` average examples (at least one example each)."""
        lengths = [len(e.input_ids) for e in self.examples]
        budget = max(self.batch_size * sum(lengths) / len(lengths), max(lengths))
        order = list(range(len(self.examples)))
        random.Random(f"{self.seed}-length-groups").shuffle(order)
        window = self.batch_size * LENGTH_GROUP_WINDOW
        groups: list[list[int]] = []
        for start in range(0, len(order), window):
            current: list[int] = []
            for i in sorted(order[start : start + window], key=lambda i: lengths[i]):
                if current and (len(current) + 1) * lengths[i] > budget:  # sorted: i is the longest so far
                    groups.append(current)
                    current = []
                current.append(i)
            groups.append(current)
        return groups


def best_fit_decreasing_packs(order: Sequence[int], examples: Sequence[Rendered], capacity: int) -> list[list[int]]:
    """Put each example (longest first) into the fullest pack it still fits in; open a new pack otherwise."""
    ranked = sorted(order, key=lambda i: -len(examples[i].input_ids))  # stable: ties keep `order`
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, pack index), kept sorted
    for i in ranked:
        need = len(examples[i].input_ids)
        at = bisect.bisect_left(free, (need, -1))
        if at < len(free):
            remaining, pack = free.pop(at)
        else:
            remaining, pack = capacity, len(packs)
            packs.append([])
        packs[pack].append(i)
        bisect.insort(free, (remaining - need, pack))
    return packs


def next_fit_packs(order: Sequence[int], examples: Sequence[Rendered], capacity: int) -> list[list[int]]:
    """Fill packs in the given order (for curricula, where order matters more than the last few % of fill)."""
    packs: list[list[int]] = []
    used = capacity
    for i in order:
        need = len(examples[i].input_ids)
        if used + need > capacity:
            packs.append([])
            used = 0
        packs[-1].append(i)
        used += need
    return packs


def curriculum_order(
    examples: Sequence[Rendered], difficulties: Sequence[float] | None, curriculum: Curriculum, seed: int
) -> list[int] | None:
    """Example indices easiest first (ties in random order), or None for shuffled epochs."""
    if curriculum == "none":
        return None
    order = list(range(len(examples)))
    random.Random(f"{seed}-curriculum").shuffle(order)
    if curriculum == "length":
        return sorted(order, key=lambda i: len(examples[i].input_ids))
    assert difficulties is not None
    return sorted(order, key=lambda i: difficulties[i])


def collate_micro_batch(batch: MicroBatch, examples: Sequence[Rendered], pad_id: int, packed: bool):
    """Tensors for one micro-batch: padded rows with an attention mask, or packed rows with restarting
    position ids and no attention mask (the form transformers reads as packed sequences)."""
    if not packed:
        return collate([examples[row[0]] for row in batch], pad_id)
    return collate_packed([[examples[i] for i in row] for row in batch], pad_id)


def collate_packed(rows: Sequence[Sequence[Rendered]], pad_id: int) -> dict[str, torch.Tensor]:
    """Concatenate each row's examples; position ids restart at 0 per example (and for the tail padding);
    the first token of each example is never a target, so no loss term crosses an example border."""
    import torch

    flat_rows = []
    for row in rows:
        ids, positions, labels = [], [], []
        for e in row:
            ids += e.input_ids
            positions += range(len(e.input_ids))
            labels += [IGNORE_INDEX] + example_labels(e)[1:]
        flat_rows.append((ids, positions, labels))
    width = max(len(ids) for ids, _, _ in flat_rows)
    out_ids, out_pos, out_labels = [], [], []
    for ids, positions, labels in flat_rows:
        pad = width - len(ids)
        out_ids.append(ids + [pad_id] * pad)
        out_pos.append(positions + list(range(pad)))
        out_labels.append(labels + [IGNORE_INDEX] * pad)
    return with_label_index({
        "input_ids": torch.tensor(out_ids),
        "position_ids": torch.tensor(out_pos),
        "labels": torch.tensor(out_labels),
    })
