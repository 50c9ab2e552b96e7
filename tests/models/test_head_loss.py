"""The frozen LM head's block-wise loss must be F.cross_entropy's, value and gradient, in fp32 and bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from r1tune.models.head_loss import block_rows, frozen_head_cross_entropy, is_frozen_plain_head
from r1tune.models.scoring import labelled_logits, summed_token_nll, with_label_index


def _problem(width=32, vocab=50_000):
    """Rows spanning two whole blocks and a partial one."""
    rows = 2 * block_rows(vocab, "cpu") + 37
    torch.manual_seed(0)
    hidden = torch.randn(rows, width, requires_grad=True)
    weight = torch.randn(vocab, width) * 0.3
    return hidden, weight, torch.randint(0, vocab, (rows,))


def _plain(hidden, weight, targets, smoothing=0.0):
    return F.cross_entropy((hidden @ weight.T).float(), targets, reduction="sum", label_smoothing=smoothing)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fp32_loss_and_gradient_equal_cross_entropy(smoothing):
    hidden, weight, targets = _problem()
    ours = frozen_head_cross_entropy(hidden, weight, targets, smoothing)
    (grad_ours,) = torch.autograd.grad(3.0 * ours, hidden)
    theirs = _plain(hidden, weight, targets, smoothing)
    (grad_theirs,) = torch.autograd.grad(3.0 * theirs, hidden)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    assert torch.allclose(grad_ours, grad_theirs, rtol=1e-4, atol=1e-4)


def test_under_bf16_autocast_it_matches_the_plain_path_to_bf16_rounding():
    hidden, weight, targets = _problem()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = frozen_head_cross_entropy(hidden, weight, targets)
        (grad_ours,) = torch.autograd.grad(ours, hidden)
        theirs = F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")
        (grad_theirs,) = torch.autograd.grad(theirs, hidden)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-3)
    assert grad_ours.dtype == hidden.dtype
    assert torch.allclose(grad_ours, grad_theirs, atol=2e-2 * float(grad_theirs.abs().max()))


def test_without_gradients_the_loss_is_the_same():
    hidden, weight, targets = _problem()
    with torch.no_grad():
        assert float(frozen_head_cross_entropy(hidden, weight, targets)) == pytest.approx(
            float(_plain(hidden, weight, targets)), rel=1e-5)


def test_only_a_frozen_bias_free_local_head_takes_this_path():
    head = torch.nn.Linear(8, 20, bias=False).requires_grad_(False)
    assert is_frozen_plain_head(head)
    assert not is_frozen_plain_head(torch.nn.Linear(8, 20, bias=False))  # trains (full fine-tuning)
    assert not is_frozen_plain_head(torch.nn.Linear(8, 20).requires_grad_(False))  # has a bias
    head.weight.ds_id = 3  # a DeepSpeed ZeRO-3 partition: only the module's own forward gathers it
    assert not is_frozen_plain_head(head)


def test_a_lora_model_trains_through_it_with_the_plain_gradients(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "up_proj"], init_lora_weights=False))
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0]])
    batch = with_label_index({"input_ids": ids, "attention_mask": (ids > 0).long(),
                              "labels": ids.masked_fill(ids == 0, -100)})
    trainable = [p for p in model.parameters() if p.requires_grad]
    ours, count = summed_token_nll(model, batch)
    grads_ours = torch.autograd.grad(ours, trainable)
    logits, targets, _ = labelled_logits(model, batch)
    theirs = F.cross_entropy(logits.float(), targets, reduction="sum")
    grads_theirs = torch.autograd.grad(theirs, trainable)
    assert count == 8 and float(ours) == pytest.approx(float(theirs), rel=1e-5)
    for a, b in zip(grads_ours, grads_theirs, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
