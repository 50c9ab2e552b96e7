"""4-bit GPTQ or AWQ through gptqmodel (extra `gptq`), calibrated on the run's own training examples, on a
CUDA machine: both algorithms run calibration forwards that take hours on a CPU, and their kernels are GPU
kernels. The result is a folder vLLM and transformers load (`quantization_config` in its config.json).
"""

from __future__ import annotations

from pathlib import Path

from r1tune.errors import R1TuneError

CALIBRATION_EXAMPLES = 256  # GPTQ's usual 128–256 calibration sequences


def check_gptq(method: str) -> None:
    """Before any merging: CUDA and the package must be there."""
    import torch

    if not torch.cuda.is_available():
        raise R1TuneError(f"export --format {method} needs a CUDA GPU, and this machine has none",
                          hint="run the export on a GPU machine, or use --format int8 or --format gguf on a CPU")
    try:
        import gptqmodel  # noqa: F401
    except ImportError as e:
        raise R1TuneError(f"export --format {method} needs gptqmodel, which is not installed",
                          hint="pip install 'r1tune[gptq]'") from e


def write_gptq(merged_dir: Path, out: Path, method: str, calibration: list[str]) -> None:
    """Quantise the model in `merged_dir` to 4 bits (group size 128) with `method` and save it into `out`."""
    from gptqmodel import GPTQModel, QuantizeConfig
    from transformers import AutoTokenizer

    check_gptq(method)
    if not calibration:
        raise R1TuneError(f"export --format {method}: the run has no training examples to calibrate on")
    config = QuantizeConfig(bits=4, group_size=128, quant_method=method)
    model = GPTQModel.load(str(merged_dir), config)
    model.quantize(calibration[:CALIBRATION_EXAMPLES], batch_size=4)
    model.save(str(out))
    AutoTokenizer.from_pretrained(merged_dir).save_pretrained(out)
