"""`make gpu-check` stays runnable without a GPU in CI: on a CPU it says it needs CUDA and exits 0, and
`--cpu-smoke` runs every section (r1tune LoRA padded and packed with validation, the HF Trainer + PEFT
baseline, the adapter merged and read back, eval generation, serving by the engine and through an HTTP gateway) on a tiny model with the real
R1 tokenizer, without an error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would really run")
def test_on_a_cpu_machine_it_says_so_and_runs_nothing():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "needs a CUDA GPU; this machine has none, so nothing ran" in done.stdout


def test_cpu_smoke_runs_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--steps", "2", "--batch-size", "2",
                           "--new-tokens", "4", "--out", str(out)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == {} and result["cpu_smoke"] is True
    sections = result["sections"]
    assert sections["r1tune LoRA packed"]["steps"] == 2 and sections["r1tune LoRA padded"]["val_loss"] > 0
    assert sections["HF Trainer + PEFT (baseline)"]["real_tokens_per_s"] > 0
    assert sections["serving"]["requests"] == 16 and sections["serving"]["completion_tokens"] > 0
    assert sections["eval generation"]["builtin_tokens_per_s"] > 0
    assert sections["export: merge + read-back"]["same_next_token"] == 1.0
    assert sections["serving through the gateway"]["same_answer_through_gateway"] is True
    assert sections["serving through a vLLM child"] == {"skipped": "needs CUDA and vllm"}


def test_the_carried_bitsandbytes_wheel_keeps_only_the_cuda13_and_cpu_libraries(tmp_path):
    import zipfile

    sys.path.insert(0, str(SCRIPT.parent))
    from gpu_carry import KEEP_LIBRARY, thin_wheel

    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    names = ["bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cpu.so",
             "bitsandbytes/libbitsandbytes_cuda118.so", "bitsandbytes/libbitsandbytes_cuda130.so",
             "bitsandbytes/libbitsandbytes_rocm64.so", "bitsandbytes-0.50.2.dist-info/RECORD"]
    with zipfile.ZipFile(wheel, "w") as out:
        for name in names:
            out.writestr(name, name)
    thin_wheel(wheel, KEEP_LIBRARY)
    with zipfile.ZipFile(wheel) as kept:
        assert kept.namelist() == [names[0], names[1], names[3], names[5]]
        assert kept.read(names[3]) == names[3].encode()


@pytest.mark.parametrize("tied", [False, True])
def test_mfu_counts_no_flops_for_the_input_embedding_lookup(tied):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    sys.path.insert(0, str(SCRIPT.parent))
    from gpu_check import lora_flops_per_token

    config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=tied)
    model = get_peft_model(Qwen2ForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    layers = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and "lora_" not in n)
    norm, head, lora = 32, 1000 * 32, sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_flops_per_token(model) == 4 * (layers + norm + head) + 6 * lora
