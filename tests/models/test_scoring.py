"""The labelled positions a batch carries (`label_index`, taken on the CPU) pick exactly what a boolean mask
of the shifted labels picks, in the same order, for plain models and for prompt tuning's virtual tokens."""

from __future__ import annotations

import torch

from r1tune.models.scoring import IGNORE_INDEX, labelled_logits, row_nll, with_label_index

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0], [15, 16, 17, 18, 19, 0]])
LABELS = torch.tensor([[-100, -100, 7, 8, 9, 10], [-100, 12, 13, -100, -100, -100], [-100, -100, -100, -100, 19, -100]])


def _batch() -> dict[str, torch.Tensor]:
    return with_label_index({"input_ids": IDS, "attention_mask": (IDS > 0).long(), "labels": LABELS})


def _mask_selection(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the boolean mask of the shifted labels selects from (B, T, V) logits lined up with the ids."""
    keep = LABELS[:, 1:] != IGNORE_INDEX
    return logits[:, :-1][keep], LABELS[:, 1:][keep]


def test_the_label_index_selects_what_the_mask_selects(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with torch.no_grad():
        logits, targets, rows = labelled_logits(model, _batch())
        expected, expected_targets = _mask_selection(model(input_ids=IDS, attention_mask=(IDS > 0).long()).logits)
    assert torch.equal(targets, expected_targets) and targets.tolist() == [7, 8, 9, 10, 12, 13, 19]
    assert rows.tolist() == [0, 0, 0, 0, 1, 1, 2]
    torch.testing.assert_close(logits, expected)


def test_prompt_tuning_skips_its_virtual_positions(tiny_llama_dir):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                           PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)).eval()
    with torch.no_grad():
        logits, targets, _ = labelled_logits(model, _batch())
        full = model(input_ids=IDS, attention_mask=(IDS > 0).long()).logits  # (B, 3 + T, V)
        expected, expected_targets = _mask_selection(full[:, 3:])
    assert torch.equal(targets, expected_targets)
    torch.testing.assert_close(logits, expected)


def test_row_sums_and_counts_follow_the_rows(tiny_llama_dir):
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with torch.no_grad():
        summed, counts = row_nll(model, _batch())
        logits, targets = _mask_selection(model(input_ids=IDS, attention_mask=(IDS > 0).long()).logits)
    token_nll = F.cross_entropy(logits.float(), targets, reduction="none")
    assert counts.tolist() == [4, 2, 1]
    torch.testing.assert_close(summed, torch.stack([token_nll[:4].sum(), token_nll[4:6].sum(), token_nll[6:].sum()]))
