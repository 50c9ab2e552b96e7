"""Models stage: presets, safe loading (preset / local folder / hub / embedded GGUF), chat formats,
generation and answer-token scoring."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tune.config import ModelConfig
from r1tune.models.chat_format import (
    CHAT_FORMATS,
    ChatFormat,
    ChatRenderer,
    ReasoningMode,
    Rendered,
    chat_format_for,
)
from r1tune.models.decoding import DecodedOutput, decode_output, split_reasoning
from r1tune.models.loading import ModelSource, load_model, load_tokenizer, r1tune_home, resolve_model_source
from r1tune.models.presets import Preset, find_preset, presets

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CHAT_FORMATS", "ChatFormat", "ChatRenderer", "DecodedOutput", "LoadedModel", "ModelSource", "Preset", "ReasoningMode",
    "add_named_adapter", "adapter_switched",
    "Rendered", "chat_format_for", "decode_output", "find_preset", "load", "load_adapter", "load_model", "load_tokenizer",
    "pack_linear_layers", "presets", "r1tune_home", "resolve_model_source", "split_reasoning", "weights_source",
]

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoadedModel:
    """Everything a stage needs to talk to one model."""

    source: ModelSource
    tokenizer: PreTrainedTokenizerBase
    renderer: ChatRenderer
    model: PreTrainedModel | None

    @property
    def preset(self) -> Preset | None:
        return self.source.preset

    @property
    def target_modules(self) -> tuple[str, ...]:
        return self.preset.lora_target_modules if self.preset else DEFAULT_TARGET_MODULES

    @property
    def sampling(self) -> dict[str, float]:
        s = self.preset.sampling if self.preset else None
        return {"temperature": s.temperature, "top_p": s.top_p} if s else {"temperature": 0.7, "top_p": 0.95}


def load(
    cfg: ModelConfig,
    reasoning: ReasoningMode = "empty_think",
    train_on_prompt: bool = False,
    with_weights: bool = True,
    adapter: Path | None = None,
    weights_dir: Path | None = None,
    mask_history: bool | None = True,
    plan: Any = None,
) -> LoadedModel:
    """Resolve, load tokenizer (+ weights, + an optional PEFT adapter) and build the chat renderer.

    `weights_dir` holds whole trained weights (a `full`/`freeze` run's `train/model/`): they replace the
    base weights, while the preset (chat format, default system prompt, sampling) stays the base's, so a
    tuned model is prompted exactly as it was trained. `mask_history` is `train.mask_history` for the
    training renderer; everything else keeps the default (final answers only). `plan`
    (models/device.DevicePlan) places the weights for inference; without it they load fp32 on the CPU."""
    source = resolve_model_source(cfg)
    tokenizer = load_tokenizer(source, cfg)
    preset = source.preset
    name = cfg.chat_format if cfg.chat_format != "auto" or preset is None else preset.chat_format
    if source.provenance is not None:  # an export is prompted exactly as its run was trained
        provenance = source.provenance
        name = cfg.chat_format if cfg.chat_format != "auto" else provenance.chat_format
        reasoning, train_on_prompt = provenance.reasoning, provenance.train_on_prompt  # type: ignore[assignment]
    fmt = chat_format_for(name, tokenizer, preset.default_system if preset else None)
    renderer = ChatRenderer(fmt, tokenizer, reasoning=reasoning, train_on_prompt=train_on_prompt,
                            mask_history=mask_history)
    model = (load_model(weights_source(cfg, weights_dir) if weights_dir else source, cfg, plan=plan)
             if with_weights else None)
    if model is not None and adapter is not None:
        model = load_adapter(model, adapter)
    return LoadedModel(source, tokenizer, renderer, model)


def inference_plan(precision: str, cfg: ModelConfig) -> Any:
    """Where and how this machine runs a model for eval, chat and export checks (models/device.py)."""
    from r1tune.models.device import current_plan

    return current_plan(precision, cfg.attn_implementation)


def pack_linear_layers(model: Any) -> int:
    """Pre-pack a bf16 model's linear layers for oneDNN (faster CPU inference, same outputs); see
    `models/packing.py`. Imported here lazily: it needs torch."""
    from r1tune.models.packing import pack_linear_layers as pack

    return pack(model)


def weights_source(cfg: ModelConfig, weights_dir: Path) -> ModelSource:
    """A local source for trained whole-model weights (checked like any local folder: safetensors only)."""
    return resolve_model_source(cfg.model_copy(update={"name": str(weights_dir)}))


def load_adapter(model: Any, adapter_dir: Path) -> Any:
    """Attach a saved PEFT adapter (safetensors) to a loaded base model."""
    from peft import PeftModel

    from r1tune.errors import ModelLoadError

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter_dir} is not a PEFT adapter folder (adapter_config.json missing)")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)


def add_named_adapter(model: Any, adapter_dir: Path, name: str) -> bool:
    """Attach a second saved LoRA/DoRA adapter to a PEFT model under `name`, beside its active one, so two
    versions share one copy of the base weights. False (nothing attached) when either is prompt learning."""
    if getattr(model, "peft_config", None) is None or model.active_peft_config.is_prompt_learning:
        return False
    from peft import PeftConfig

    if PeftConfig.from_pretrained(str(adapter_dir)).is_prompt_learning:
        return False
    model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
    return True


@contextlib.contextmanager
def adapter_switched(model: Any, name: str) -> Iterator[None]:
    """Run a multi-adapter PEFT model with adapter `name` active for a while."""
    previous = model.active_adapter
    model.set_adapter(name)
    try:
        yield
    finally:
        model.set_adapter(previous)
