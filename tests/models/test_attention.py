"""CPU bf16 training attention: SDPA's forward bit for bit, gradients at least as accurate, no attention
across packed examples, and the model's own implementation back after the loop."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import varied_records

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.models.attention import CPU_BF16_TRAINING, sdpa_cpu_fp32_backward, training_attention
from r1tune.models.scoring import collate, summed_token_nll
from r1tune.train.batching import collate_packed

GQA_MODULE = SimpleNamespace(num_key_value_groups=2, is_causal=True)


def _inputs(dtype=torch.bfloat16, batch=2, length=24, query_grad=True):
    torch.manual_seed(0)
    q = torch.randn(batch, 4, length, 16, dtype=dtype, requires_grad=query_grad)
    k, v = (torch.randn(batch, 2, length, 16, dtype=dtype, requires_grad=True) for _ in range(2))
    mask = torch.ones(length, length, dtype=torch.bool).tril().expand(batch, 1, length, length).clone()
    mask[1, :, :, -5:] = False  # the second row's last five positions are padding keys
    mask[1, :, -5:, -5:] = torch.eye(5, dtype=torch.bool)
    return q, k, v, mask


def _sdpa(q, k, v, mask):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(GQA_MODULE, q, k, v, mask, scaling=0.25)[0]


def _graph_nodes(node) -> set[str]:
    """The names of the autograd nodes behind `node`."""
    seen, todo = {}, [node]
    while todo:
        node = todo.pop()
        if node is not None and id(node) not in seen:
            seen[id(node)] = type(node).__name__
            todo.extend(parent for parent, _ in node.next_functions)
    return set(seen.values())


def _grads(attend, inputs, upstream):
    q, k, v, mask = inputs
    for t in (q, k, v):
        t.grad = None
    out = attend(q, k, v, mask)
    assert (attend is _sdpa) != ("FlashFp32BackwardBackward" in _graph_nodes(out.grad_fn))
    out.backward(upstream)
    return out.detach(), [t.grad.float() for t in (q, k, v) if t.requires_grad]


@pytest.mark.parametrize("query_grad", [True, False], ids=["adapted_query", "adapters_on_key_value_only"])
def test_forward_is_sdpas_and_gradients_are_at_least_as_accurate(query_grad):
    inputs = _inputs(query_grad=query_grad)
    upstream = torch.randn(2, 24, 4, 16, dtype=torch.bfloat16)
    ours_out, ours = _grads(lambda *a: sdpa_cpu_fp32_backward(GQA_MODULE, *a, scaling=0.25)[0], inputs, upstream)
    sdpa_out, sdpa = _grads(_sdpa, inputs, upstream)
    exact = [t.detach().float().requires_grad_(t.requires_grad) for t in inputs[:3]]
    _, reference = _grads(_sdpa, (*exact, inputs[3]), upstream.float())
    assert torch.equal(ours_out, sdpa_out)
    assert len(ours) == (3 if query_grad else 2)
    for mine, theirs, truth in zip(ours, sdpa, reference, strict=True):
        assert (mine - truth).abs().max() <= (theirs - truth).abs().max()
        assert torch.allclose(mine, truth, atol=2e-2 * float(truth.abs().max()))


def test_causal_rows_without_a_mask_match_sdpa():
    q, k, v, _ = _inputs()
    ours = sdpa_cpu_fp32_backward(GQA_MODULE, q, k, v, None, scaling=0.25)[0]
    assert torch.equal(ours, _sdpa(q, k, v, None))


@pytest.mark.parametrize("case", ["no_grad", "fp32"])
def test_anything_but_bf16_training_is_sdpa_itself(case):
    inputs = _inputs(torch.float32 if case == "fp32" else torch.bfloat16)
    with torch.set_grad_enabled(case != "no_grad"):
        ours = sdpa_cpu_fp32_backward(GQA_MODULE, *inputs, scaling=0.25)[0]
        assert torch.equal(ours, _sdpa(*inputs))
        assert "FlashFp32BackwardBackward" not in _graph_nodes(ours.grad_fn)


def _bf16_model(model_dir):
    loaded = models.load(ModelConfig(name=str(model_dir)))
    return loaded, loaded.model.to(torch.bfloat16).train()


def test_training_attention_switches_only_cpu_bf16_sdpa_and_restores(tiny_llama_dir):
    _, model = _bf16_model(tiny_llama_dir)
    assert model.config._attn_implementation == "sdpa"
    with training_attention(model, "bf16", "cpu") as used:
        assert used == CPU_BF16_TRAINING == model.config._attn_implementation
    assert model.config._attn_implementation == "sdpa"
    for precision, device in (("fp32", "cpu"), ("bf16", "cuda")):
        with training_attention(model, precision, device) as used:
            assert used is None and model.config._attn_implementation == "sdpa"


def test_packed_rows_attend_within_their_examples(tiny_qwen_r1_dir):
    """The packed-equals-unpacked proof (tests/train/test_batching.py), on this attention path with gradients."""
    loaded, model = _bf16_model(tiny_qwen_r1_dir)
    examples = [loaded.renderer.render_training(r) for r in varied_records(6)]
    pad = loaded.tokenizer.pad_token_id
    with training_attention(model, "bf16", "cpu"):
        alone = sum(float(summed_token_nll(model, collate([e], pad))[0]) for e in examples)
        packed, _ = summed_token_nll(model, collate_packed([examples[:3], examples[3:]], pad))
        packed.backward()
    assert float(packed) == pytest.approx(alone, rel=1e-2)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
