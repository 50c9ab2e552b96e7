"""Skipping peft's input casts under autocast must change speed only: the same loss and gradients bit for bit."""

from __future__ import annotations

import torch

from r1tune.models.precision import adapter_input_casts_skipped, autocast


def _lora_model(tiny_llama_dir, use_dora: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], use_dora=use_dora)
    model = get_peft_model(base, config)
    for name, p in model.named_parameters():  # a non-zero B, so the adapter's path carries gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _loss_and_grads(model, skip: bool):
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    model.zero_grad(set_to_none=True)
    with adapter_input_casts_skipped(model, "bf16" if skip else "fp32"), autocast("bf16"):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_skipping_the_casts_gives_the_same_loss_and_gradients(tiny_llama_dir):
    model = _lora_model(tiny_llama_dir, use_dora=False)
    loss, grads = _loss_and_grads(model, skip=False)
    loss_skipped, grads_skipped = _loss_and_grads(model, skip=True)
    assert torch.equal(loss, loss_skipped)
    assert grads.keys() == grads_skipped.keys() and len(grads) > 0
    for name, grad in grads.items():
        assert torch.equal(grad, grads_skipped[name]), name


def _cast_flags(model) -> set[bool]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {m.cast_input_dtype_enabled for m in model.modules() if isinstance(m, BaseTunerLayer)}


def test_casts_come_back_after_the_span_and_fp32_keeps_them(tiny_llama_dir):
    model = _lora_model(tiny_llama_dir, use_dora=False)
    with adapter_input_casts_skipped(model, "bf16"):
        assert _cast_flags(model) == {False}
    assert _cast_flags(model) == {True}
    with adapter_input_casts_skipped(model, "fp32"):
        assert _cast_flags(model) == {True}


def test_dora_keeps_its_casts(tiny_llama_dir):
    """DoRA's magnitude path reads the input outside a matmul: skipping its cast changed the loss's last bits."""
    model = _lora_model(tiny_llama_dir, use_dora=True)
    with adapter_input_casts_skipped(model, "bf16"):
        assert _cast_flags(model) == {True}
