"""Batch plans and packing: every example once per epoch, packs within capacity, no attention across
packed examples (packed loss == unpacked loss), answer-only logits == full logits, curricula."""

from __future__ import annotations

import pytest
import torch
from helpers import product_records, varied_records

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.data.records import Message, Record
from r1tune.errors import DataError
from r1tune.models.chat_format import Rendered
from r1tune.models.scoring import IGNORE_INDEX, collate, summed_token_nll
from r1tune.train.batching import (
    BatchPlan,
    best_fit_decreasing_packs,
    collate_packed,
    curriculum_order,
    trained_targets,
)
from r1tune.train.recipe import _difficulty


def _fake(lengths: list[int]) -> list[Rendered]:
    return [Rendered(list(range(1, n + 1)), [False] * (n // 2) + [True] * (n - n // 2), []) for n in lengths]


def test_best_fit_decreasing_respects_capacity_and_keeps_every_example():
    examples = _fake([90, 10, 50, 45, 30, 70, 20, 5, 60, 40])
    packs = best_fit_decreasing_packs(range(len(examples)), examples, capacity=100)
    assert sorted(i for p in packs for i in p) == list(range(len(examples)))
    assert all(sum(len(examples[i].input_ids) for i in p) <= 100 for p in packs)
    assert len(packs) == 5  # 420 tokens: 5 bins of 100 is the optimum here


@pytest.mark.parametrize("packing", [True, False])
def test_plan_covers_each_example_once_per_epoch_and_splits_steps_across_processes(packing):
    examples = _fake([12 + (7 * i) % 40 for i in range(37)])
    one = BatchPlan(examples, batch_size=2, micro_batches_per_step=4, seed=3, packing=packing, max_seq_len=64)
    for epoch in range(2):
        seen = [i for batch in one.epoch(epoch) for row in batch for i in row]
        assert sorted(seen) == list(range(len(examples)))
    assert one.epoch(0) != one.epoch(1)  # reshuffled
    assert one.epoch(1) == BatchPlan(examples, 2, 4, 3, packing, 64).epoch(1)  # a pure function of the seed
    # Step k of a 2-process run with grad_accum 2 holds the same micro-batches as 1 process with grad_accum 4.
    steps = [one.step(k) for k in range(one.steps_per_epoch)]
    assert [b for s in steps for b in s] == one.epoch(0)
    assert one.step(one.steps_per_epoch) == one.epoch(1)[:4]


def test_length_grouping_pads_less_than_random_batches():
    examples = _fake([10 + (37 * i) % 200 for i in range(128)])
    grouped = BatchPlan(examples, 8, 1, 0, packing=False, max_seq_len=512)
    packed = BatchPlan(examples, 8, 1, 0, packing=True, max_seq_len=512)
    random_fill = sum(len(e.input_ids) for e in examples) / (200 * len(examples))  # ~ every batch has a long one
    assert grouped.fill_rate() > 0.85 > random_fill
    assert packed.fill_rate() > 0.95
    # Memory stays bounded: a group's padded size is at most batch_size average examples.
    budget = 8 * sum(len(e.input_ids) for e in examples) / len(examples)
    for batch in grouped.epoch(0):
        assert len(batch) * max(len(examples[row[0]].input_ids) for row in batch) <= budget
    assert abs(len(grouped.epoch(0)) - len(examples) / 8) <= 3  # about as many steps as plain batches of 8


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_qwen_r1_dir"])
def test_packed_loss_equals_unpacked_loss(fixture, request):
    """Proof of isolation: restarting position ids make transformers attend within each example only."""
    loaded = models.load(ModelConfig(name=str(request.getfixturevalue(fixture))))
    model = loaded.model.eval()
    examples = [loaded.renderer.render_training(r) for r in varied_records(6)]
    pad = loaded.tokenizer.pad_token_id
    with torch.no_grad():
        alone = [summed_token_nll(model, collate([e], pad)) for e in examples]
        packed = summed_token_nll(model, collate_packed([examples[:3], examples[3:]], pad))
        # The same rows with plain position ids (one long sequence each): examples see each other.
        leaky_batch = collate_packed([examples[:3], examples[3:]], pad)
        leaky_batch["position_ids"] = torch.arange(leaky_batch["input_ids"].size(1)).expand_as(leaky_batch["input_ids"])
        leaky = summed_token_nll(model, leaky_batch)
    total = sum(float(nll) for nll, _ in alone)
    assert packed[1] == sum(n for _, n in alone) == sum(trained_targets(e) for e in examples)
    assert float(packed[0]) == pytest.approx(total, rel=1e-5)
    assert abs(float(leaky[0]) - total) > 1e-3 * total


def test_answer_only_logits_equal_full_logits(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    model = loaded.model.eval()
    batch = collate([loaded.renderer.render_training(r) for r in varied_records(4)], loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        fast, n = summed_token_nll(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        full = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                                 batch["labels"][:, 1:].reshape(-1), reduction="sum")
    assert n == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert float(fast) == pytest.approx(float(full), rel=1e-5)
    # Label smoothing: (1 - e) x NLL + e x the mean cross-entropy against every vocabulary entry.
    with torch.no_grad():
        smoothed, _ = summed_token_nll(model, batch, label_smoothing=0.1)
        keep = batch["labels"][:, 1:] != IGNORE_INDEX
        uniform = -torch.log_softmax(logits[keep], dim=-1).mean(dim=-1).sum()
    assert float(smoothed) == pytest.approx(0.9 * float(full) + 0.1 * float(uniform), rel=1e-5)


def test_packed_labels_never_cross_an_example_border(smol_tokenizer):
    a, b = _fake([6, 5])
    a.trained, b.trained = [True] * 6, [True] * 5  # even with train_on_prompt, token 0 of b is not a target
    batch = collate_packed([[a, b]], pad_id=0)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]]
    assert batch["labels"][0, 6] == IGNORE_INDEX and batch["labels"][0, 0] == IGNORE_INDEX
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == trained_targets(a) + trained_targets(b)


@pytest.mark.parametrize("mode, trained_text", [
    ("empty_think", "\n</think>\n\nThis blue mug is made of ceramic. Buy it today!<｜end▁of▁sentence｜>"),
    ("keep_prompt_think", "This blue mug is made of ceramic. Buy it today!<｜end▁of▁sentence｜>"),
])
def test_r1_reasoning_modes_reach_the_packed_labels(tiny_qwen_r1_dir, mode, trained_text):
    loaded = models.load(ModelConfig(name=str(tiny_qwen_r1_dir)), reasoning=mode)
    examples = [loaded.renderer.render_training(r) for r in product_records(2)]
    batch = collate_packed([examples], loaded.tokenizer.pad_token_id)
    labels = batch["labels"][0]
    first = labels[: len(examples[0].input_ids)]
    assert loaded.tokenizer.decode(first[first != IGNORE_INDEX]) == trained_text


def test_curricula_order_easy_first():
    examples = _fake([30, 10, 20])
    assert curriculum_order(examples, None, "length", seed=0) == [1, 2, 0]
    assert curriculum_order(examples, [0.5, 0.9, 0.1], "difficulty", seed=0) == [2, 0, 1]
    assert curriculum_order(examples, None, "none", seed=0) is None
    plan = BatchPlan(examples, 1, 1, 0, packing=False, max_seq_len=64, curriculum_order=[1, 2, 0])
    assert plan.epoch(0) == plan.epoch(1) == [[[1]], [[2]], [[0]]]


def test_missing_difficulty_is_a_data_error_naming_the_record():
    record = Record([Message("user", "q"), Message("assistant", "a")], source="data.jsonl:7", meta={"level": "x"})
    with pytest.raises(DataError, match=r"data.jsonl:7.*meta.level"):
        _difficulty(record, "level")
    assert _difficulty(Record(record.messages, meta={"level": "2"}), "level") == 2.0
