"""The fused LoRA layer computes peft's LoRA forward and gradients, falls back to peft's forward where the
fusion would change the result, is what `lora` training builds (from scratch or continuing a version), and
saves adapters that plain peft loads unchanged."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear

from r1tune import models
from r1tune.config import ModelConfig, TrainConfig
from r1tune.train.fused_lora import FusedAddLoraLinear, use_fused_layers
from r1tune.train.methods import apply_method


class TwoLayers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(24, 40, bias=True)
        self.down = torch.nn.Linear(40, 24, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


def _pair(dtype=torch.float32, fused_config=None, **lora):
    """(peft's model, the fused model) with identical weights; lora_B starts non-zero so the update counts."""
    settings = {"r": 4, "lora_alpha": 8, "target_modules": ["up", "down"], "init_lora_weights": False, **lora}
    torch.manual_seed(0)
    base = TwoLayers().to(dtype)
    plain = get_peft_model(_copy(base), LoraConfig(**settings))
    fused = get_peft_model(_copy(base), fused_config or use_fused_layers(LoraConfig(**settings)))
    fused.load_state_dict(plain.state_dict())
    for model in (plain, fused):
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
    return plain, fused


def _copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


def _output_and_grads(model, x, autocast: bool = False):
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    (out.float() ** 2).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, x.grad, grads


def test_fused_layers_compute_pefts_output_and_gradients_in_fp32():
    plain, fused = _pair()
    assert all(isinstance(m, FusedAddLoraLinear) for m in fused.modules() if isinstance(m, LoraLinear))
    x = torch.randn(3, 5, 24)
    (out_a, dx_a, g_a), (out_b, dx_b, g_b) = (_output_and_grads(m, x) for m in (plain, fused))
    torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dx_b, dx_a, rtol=1e-5, atol=1e-6)
    assert g_a.keys() == g_b.keys() and any("lora_B" in n for n in g_a)
    for name in g_a:
        torch.testing.assert_close(g_b[name], g_a[name], rtol=1e-5, atol=1e-5)


def test_under_bf16_autocast_a_bf16_base_gives_pefts_result_within_bf16_rounding():
    plain, fused = _pair(torch.bfloat16)
    x = torch.randn(4, 7, 24)
    (out_a, _, g_a), (out_b, _, g_b) = (_output_and_grads(m, x, autocast=True) for m in (plain, fused))
    assert out_b.dtype == out_a.dtype == torch.bfloat16
    torch.testing.assert_close(out_b.float(), out_a.float(), rtol=2e-2, atol=2e-2)
    assert g_a.keys() == g_b.keys() and all("lora_" in name and g_b[name].dtype == torch.float32 for name in g_b)
    for name in g_a:  # bf16 matmuls: compared at the scale of the whole gradient
        assert (g_b[name] - g_a[name]).abs().max() <= 2e-2 * g_a[name].abs().max(), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_fused_path_runs_without_pefts_forward(dtype, monkeypatch):
    _, fused = _pair(dtype)
    monkeypatch.setattr(LoraLinear, "forward", lambda *a, **k: pytest.fail("peft's forward ran"))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        assert fused(torch.randn(2, 24)).shape == (2, 24)


@pytest.mark.parametrize("case", ["dropout", "mixed dtypes", "merged", "adapter off"])
def test_peft_forward_runs_where_fusing_would_change_the_result(case, monkeypatch):
    plain, fused = _pair(torch.bfloat16 if case == "mixed dtypes" else torch.float32,
                         lora_dropout=0.5 if case == "dropout" else 0.0)
    calls = []
    monkeypatch.setattr(LoraLinear, "forward", lambda self, *a, **k: calls.append(1) or self.base_layer(*a))
    x = torch.randn(2, 24, dtype=torch.bfloat16 if case == "mixed dtypes" else torch.float32)
    if case == "merged":
        fused.merge_adapter()
    with fused.disable_adapter() if case == "adapter off" else torch.no_grad():
        fused(x)
    assert len(calls) == 2, case  # both layers went to peft's forward


def test_lora_training_builds_fused_layers_and_saves_an_adapter_plain_peft_loads(tiny_llama_dir, tmp_path):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    model = apply_method(loaded.model, TrainConfig(method="lora", lora_rank=4), loaded.target_modules)
    layers = [m for m in model.modules() if isinstance(m, LoraLinear)]
    assert layers and all(type(m) is FusedAddLoraLinear for m in layers)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 9, 14, 2, 7]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(models.load(ModelConfig(name=str(tiny_llama_dir))).model,
                                             str(tmp_path / "adapter"))
        assert not any(isinstance(m, FusedAddLoraLinear) for m in reloaded.modules())
        torch.testing.assert_close(reloaded(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)
    continued = apply_method(models.load(ModelConfig(name=str(tiny_llama_dir))).model,
                             TrainConfig(method="lora", init_from=str(tmp_path / "adapter")), loaded.target_modules)
    assert all(type(m) is FusedAddLoraLinear for m in continued.modules() if isinstance(m, LoraLinear))


def test_dora_keeps_pefts_layers(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    model = apply_method(loaded.model, TrainConfig(method="dora", lora_rank=4), loaded.target_modules)
    layers = [m for m in model.modules() if isinstance(m, LoraLinear)]
    assert layers and not any(isinstance(m, FusedAddLoraLinear) for m in layers)
