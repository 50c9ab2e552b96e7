"""CPU bf16 training attention: on its matmul path, outputs within twice SDPA's bf16 error and gradients at
least as accurate as SDPA's; on its flash path (long rows), SDPA's forward bit for bit and gradients within
10% of SDPA's error; no attention across packed examples; the model's own implementation back after the loop."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import varied_records

from r1tune import models
from r1tune.config import ModelConfig
from r1tune.models import attention
from r1tune.models.attention import CPU_BF16_TRAINING, cpu_bf16_training_attention, training_attention
from r1tune.models.scoring import collate, summed_token_nll
from r1tune.train.batching import collate_packed

GQA_MODULE = SimpleNamespace(num_key_value_groups=2, is_causal=True)


PATHS = {"matmul": "GroupedMatmulAttentionBackward", "flash": "FlashFp32BackwardBackward"}


@pytest.fixture(params=["matmul", "matmul_in_chunks", "flash"])
def path(request, monkeypatch):
    """Each path of the CPU bf16 attention: rows past MATMUL_MAX_ELEMENTS take the flash kernel; causal rows
    longer than CAUSAL_CHUNK_ROWS go in chunks (here 24 rows in chunks of 7, the last one short)."""
    if request.param == "flash":
        monkeypatch.setattr(attention, "MATMUL_MAX_ELEMENTS", 0)
    if request.param == "matmul_in_chunks":
        monkeypatch.setattr(attention, "CAUSAL_CHUNK_ROWS", 7)
    return request.param.removesuffix("_in_chunks")


def _inputs(dtype=torch.bfloat16, batch=2, length=24, query_grad=True, sharpness=1.0):
    torch.manual_seed(0)
    q = (torch.randn(batch, 4, length, 16, dtype=dtype) * sharpness).requires_grad_(query_grad)
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


def _grads(attend, inputs, upstream, path=None):
    q, k, v, mask = inputs
    for t in (q, k, v):
        t.grad = None
    out = attend(q, k, v, mask)
    assert {name for name in PATHS.values() if name in _graph_nodes(out.grad_fn)} == (
        {PATHS[path]} if path else set())
    out.backward(upstream)
    return out.detach(), [t.grad.float() for t in (q, k, v) if t.requires_grad]


def _error(value, truth):
    return float((value.float() - truth.float()).abs().max())


@pytest.mark.parametrize("sharpness", [1.0, 4.0], ids=["plain_scores", "sharp_scores"])
@pytest.mark.parametrize("query_grad", [True, False], ids=["adapted_query", "adapters_on_key_value_only"])
def test_outputs_near_sdpas_and_gradients_at_least_as_accurate(path, query_grad, sharpness):
    inputs = _inputs(query_grad=query_grad, sharpness=sharpness)
    upstream = torch.randn(2, 24, 4, 16, dtype=torch.bfloat16)
    ours_out, ours = _grads(lambda *a: cpu_bf16_training_attention(GQA_MODULE, *a, scaling=0.25)[0], inputs,
                            upstream, path)
    sdpa_out, sdpa = _grads(_sdpa, inputs, upstream)
    exact = [t.detach().float().requires_grad_(t.requires_grad) for t in inputs[:3]]
    truth_out, reference = _grads(_sdpa, (*exact, inputs[3]), upstream.float())
    if path == "flash":
        assert torch.equal(ours_out, sdpa_out)
    else:  # probabilities rounded to bf16 before the value product; measured 1.3-1.6x SDPA's error here
        assert _error(ours_out, truth_out) <= 2 * _error(sdpa_out, truth_out)
    assert len(ours) == (3 if query_grad else 2)
    # the flash path's fp32 backward is not always the closer one with sharp scores (query gradient: 1.24e-2
    # against SDPA's 1.16e-2 here), so it is held to within 10% of SDPA's error
    slack = 1.0 if path == "matmul" else 1.1
    for mine, theirs, truth in zip(ours, sdpa, reference, strict=True):
        assert _error(mine, truth) <= slack * _error(theirs, truth)
        assert torch.allclose(mine, truth, atol=2e-2 * float(truth.abs().max()))


def test_causal_rows_without_a_mask_match_sdpa(path):
    q, k, v, _ = _inputs()
    ours = cpu_bf16_training_attention(GQA_MODULE, q, k, v, None, scaling=0.25)[0]
    if path == "flash":
        assert torch.equal(ours, _sdpa(q, k, v, None))
    else:
        assert torch.allclose(ours.float(), _sdpa(q, k, v, None).float(), atol=2e-2)


def test_every_layer_shares_one_bias_and_the_loop_drops_it(tiny_llama_dir):
    q, k, v, mask = _inputs()
    cpu_bf16_training_attention(GQA_MODULE, q, k, v, mask, scaling=0.25)
    source, (bias, hides_later) = attention._bias_cache
    cpu_bf16_training_attention(GQA_MODULE, q, k, v, mask, scaling=0.25)
    assert source is mask and attention._bias_cache[1][0] is bias and hides_later
    assert bias.dtype == torch.float32 and torch.equal(torch.isneginf(bias), ~mask)
    _, model = _bf16_model(tiny_llama_dir)
    with training_attention(model, "bf16", "cpu"):
        pass
    assert attention._bias_cache == [None, None]


def test_chunks_only_under_a_mask_that_hides_later_keys(monkeypatch):
    monkeypatch.setattr(attention, "CAUSAL_CHUNK_ROWS", 10)
    assert attention._query_chunks(24, True) == [(0, 10), (10, 20), (20, 24)]
    assert attention._query_chunks(24, False) == [(0, 24)]
    q, k, v, mask = _inputs()
    mask[1, :, 2, 20] = True  # one query sees a later key: no chunks, and its output is the full softmax's
    assert attention._additive_bias(mask, 24, False, mask.device)[1] is False
    ours = cpu_bf16_training_attention(GQA_MODULE, q, k, v, mask, scaling=0.25)[0]
    assert torch.allclose(ours.float(), _sdpa(q, k, v, mask).float(), atol=2e-2)


def test_a_query_row_that_attends_nothing_takes_the_flash_path():
    """Left padding leaves the first rows without keys: softmax over nothing is NaN on the matmul path."""
    q, k, v, mask = _inputs()
    mask[0, :, :3, :] = False
    mask[0, :, :, :3] = False
    out = cpu_bf16_training_attention(GQA_MODULE, q, k, v, mask, scaling=0.25)[0]
    assert PATHS["flash"] in _graph_nodes(out.grad_fn)
    assert torch.equal(out, _sdpa(q, k, v, mask))


@pytest.mark.parametrize("case", ["no_grad", "fp32"])
def test_anything_but_bf16_training_is_sdpa_itself(case):
    inputs = _inputs(torch.float32 if case == "fp32" else torch.bfloat16)
    with torch.set_grad_enabled(case != "no_grad"):
        ours = cpu_bf16_training_attention(GQA_MODULE, *inputs, scaling=0.25)[0]
        assert torch.equal(ours, _sdpa(*inputs))
        assert not set(PATHS.values()) & _graph_nodes(ours.grad_fn)


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
