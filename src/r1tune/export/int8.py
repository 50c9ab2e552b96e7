"""CPU weight-only INT8 through torchao (extra `int8`), saved as safetensors that `from_pretrained` (and so
r1tune's loader and `r1tune serve`) loads back with no r1tune code.

Picked by measurement (SmolLM2-135M, this project's 2-core CPU, 64 greedy tokens, one sitting): torchao
int8 weight-only 20.1 tokens/s after reloading, loss +1.0% against fp32's 28.0 tokens/s; optimum-quanto's
qint8 ran 29.2 tokens/s with bf16 activations but its files need quanto's own loader, and torchao's dynamic
int8 activations moved the loss 5.7%. Size, not speed, is what INT8 buys on such a CPU: `make bench-export`
measures both on every run.
"""

from __future__ import annotations

from pathlib import Path

from r1tune.errors import R1TuneError


def check_int8() -> None:
    try:
        import torchao  # noqa: F401
    except ImportError as e:
        raise R1TuneError("export --format int8 needs torchao, which is not installed",
                          hint="pip install 'r1tune[int8]'") from e


def write_int8(merged_dir: Path, out: Path) -> None:
    """Quantise the linear layers of the fp32 model in `merged_dir` to int8 weights and save into `out`."""
    import torch
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TorchAoConfig

    check_int8()
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32,
                                                 quantization_config=TorchAoConfig(Int8WeightOnlyConfig()))
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(merged_dir).save_pretrained(out)
