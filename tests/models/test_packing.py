"""Pre-packed linear layers must change speed only: every output bit-identical to the plain model."""

from __future__ import annotations

import copy

import pytest
import torch

from r1tune.models.packing import PackedLinear, pack_linear_layers, packing_supported

pytestmark = pytest.mark.skipif(not packing_supported(), reason="this PyTorch build has no oneDNN bf16 packing")


@pytest.fixture
def bf16_pair(tiny_llama_dir):
    """(plain, packed) copies of the tiny Llama in bf16."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16).eval()
    packed = copy.deepcopy(plain)
    count = pack_linear_layers(packed)
    assert count == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the LM head
    return plain, packed


def test_every_linear_layer_is_packed_and_still_a_linear(bf16_pair):
    _plain, packed = bf16_pair
    layers = [m for m in packed.modules() if isinstance(m, torch.nn.Linear)]
    assert layers and all(isinstance(m, PackedLinear) for m in layers)
    q_proj = packed.model.layers[0].self_attn.q_proj
    assert q_proj.in_features == 64 and q_proj.weight.shape == (64, 64)
    assert not any("packed_weight" in key for key in packed.state_dict())  # never saved with the model


def test_packed_model_gives_identical_logits_with_padding_and_cache(bf16_pair):
    from transformers import DynamicCache

    plain, packed = bf16_pair
    ids = torch.tensor([[0, 0, 11, 12, 13, 14], [21, 22, 23, 24, 25, 26]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.inference_mode():
        caches = DynamicCache(), DynamicCache()
        first = [m(input_ids=ids, attention_mask=mask, past_key_values=c, use_cache=True).logits
                 for m, c in zip((plain, packed), caches, strict=True)]
        assert torch.equal(first[0], first[1])
        step = torch.tensor([[7], [8]])
        mask = torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], dim=1)
        second = [m(input_ids=step, attention_mask=mask, past_key_values=c, use_cache=True).logits
                  for m, c in zip((plain, packed), caches, strict=True)]
    assert torch.equal(second[0], second[1])


def test_greedy_generation_is_token_identical(bf16_pair):
    plain, packed = bf16_pair
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        a, b = (m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                           pad_token_id=0) for m in (plain, packed))
    assert torch.equal(a, b)


def test_lora_adapters_attach_over_packed_layers_and_match_the_plain_model(bf16_pair):
    from peft import LoraConfig, get_peft_model

    plain, packed = bf16_pair
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    tuned_plain = get_peft_model(plain, lora)
    torch.manual_seed(1)
    tuned_packed = get_peft_model(packed, lora)
    base_layer = tuned_packed.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(base_layer, PackedLinear)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.inference_mode():
        with_adapter = [m(input_ids=ids).logits for m in (tuned_plain, tuned_packed)]
        with tuned_packed.disable_adapter():
            without = tuned_packed(input_ids=ids).logits
    assert torch.equal(with_adapter[0], with_adapter[1])
    assert not torch.equal(with_adapter[1], without)  # the adapter really took part


def test_a_layer_that_needs_gradients_falls_back_to_plain_linear(bf16_pair):
    plain, packed = bf16_pair
    layer_plain, layer_packed = plain.model.layers[0].mlp.up_proj, packed.model.layers[0].mlp.up_proj
    x = torch.randn(3, 64, dtype=torch.bfloat16, requires_grad=True)
    layer_packed(x).float().sum().backward()
    grad_packed = x.grad.clone()
    x.grad = None
    layer_plain(x).float().sum().backward()
    assert torch.equal(grad_packed, x.grad)
    # a trainable weight gets its gradient even when the input needs none (e.g. the first layer)
    layer_packed.weight.requires_grad_(True)
    layer_packed(torch.randn(3, 64, dtype=torch.bfloat16)).float().sum().backward()
    assert layer_packed.weight.grad is not None and layer_packed.weight.grad.abs().sum() > 0


def test_fp32_models_are_left_alone(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    assert pack_linear_layers(model) == 0
    assert not any(isinstance(m, PackedLinear) for m in model.modules())


def test_without_support_nothing_is_packed(tiny_llama_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    import r1tune.models.packing as packing

    monkeypatch.setattr(packing, "packing_supported", lambda: False)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    assert packing.pack_linear_layers(model) == 0
    assert not any(isinstance(m, PackedLinear) for m in model.modules())


def test_packing_for_autocast_reproduces_autocast_and_restores_the_layers(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    from r1tune.models.packing import packed_for_autocast

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    before = dict(model.named_modules())
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = model(input_ids=ids).logits
        plain_tokens = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                      do_sample=False, pad_token_id=0)
        with packed_for_autocast(model) as count:
            assert count == 2 * 7 + 1
            packed = model(input_ids=ids).logits
            packed_tokens = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                           do_sample=False, pad_token_id=0)
    assert torch.equal(reference, packed) and torch.equal(plain_tokens, packed_tokens)
    after = dict(model.named_modules())
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)  # the same objects
    with torch.inference_mode():  # outside autocast a packed layer computes in fp32, like the plain one
        with packed_for_autocast(model):
            fp32 = model(input_ids=ids).logits
        assert fp32.dtype == torch.float32 and torch.equal(fp32, model(input_ids=ids).logits)
