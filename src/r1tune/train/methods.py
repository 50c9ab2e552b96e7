"""Tuning methods: which parameters train, set up through peft where it has the method.

`lora`/`dora`/`qlora`, `prefix` and `prompt` wrap the model with peft (a PEFT adapter is the result);
`full` trains every weight and `freeze` only the top `freeze_trainable_layers` blocks plus the final norm
(the seeds' "freeze the lower layers"); both save a whole model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from r1tune.config import TrainConfig
from r1tune.errors import ConfigError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PEFT_METHODS = ("lora", "dora", "qlora", "prefix", "prompt")


def check_method_runnable(cfg: TrainConfig) -> None:
    """Refuse, before any work, a method this machine cannot run."""
    if cfg.method != "qlora":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "train.method: qlora needs a CUDA GPU (bitsandbytes 4-bit NF4 kernels); this machine has none",
            hint="use train.method: lora on CPU (same adapter format), or run on a GPU machine",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("train.method: qlora needs the bitsandbytes package",
                          hint="pip install 'r1tune[gpu]' (bitsandbytes)") from None


def apply_method(model: Any, cfg: TrainConfig, default_targets: Sequence[str]) -> Any:
    """Return the model to train, with exactly the method's parameters requiring grad."""
    check_method_runnable(cfg)
    if cfg.method == "qlora":
        model = _prepare_4bit(model)
    if cfg.init_from is not None:
        model = _continue_adapter(model, cfg)
    elif cfg.method in ("lora", "dora", "qlora"):
        model = _add_lora(model, cfg, default_targets)
    elif cfg.method in ("prefix", "prompt"):
        model = _add_virtual_tokens(model, cfg)
    elif cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        _freeze_lower_layers(model, cfg.freeze_trainable_layers)
    trainable, total = count_parameters(model)
    log.info("method %s: %d of %d parameters train (%.2f%%)", cfg.method, trainable, total,
             100 * trainable / max(total, 1))
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts. A parameter DeepSpeed ZeRO-3 partitioned as it loaded holds no
    elements in this process: its whole size is `ds_numel`."""
    sizes = [(p.requires_grad, getattr(p, "ds_numel", p.numel())) for p in model.parameters()]
    return sum(n for trains, n in sizes if trains), sum(n for _, n in sizes)


def trainable_named_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def saves_whole_model(method: str) -> bool:
    return method not in PEFT_METHODS


def _add_lora(model: Any, cfg: TrainConfig, default_targets: Sequence[str]) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = list(cfg.target_modules or default_targets)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(
            f"train.target_modules {missing} do not exist in this model",
            hint=f"linear layers here include {sorted(n for n in present if n.endswith('proj'))}",
        )
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets, use_dora=cfg.method == "dora", task_type="CAUSAL_LM")
    return get_peft_model(model, _with_fused_layers(config, cfg.method))


def _with_fused_layers(config: Any, method: str) -> Any:
    """Plain LoRA on an unquantized base trains through `train.fused_lora`'s layers (same adapter format)."""
    if method != "lora":
        return config
    from r1tune.train.fused_lora import use_fused_layers

    return use_fused_layers(config)


def _continue_adapter(model: Any, cfg: TrainConfig) -> Any:
    """`train.init_from`: the version's adapter, loaded trainable (its rank and targets are kept)."""
    from pathlib import Path

    from peft import LoraConfig, PeftModel

    if cfg.method not in ("lora", "dora", "qlora"):
        raise ConfigError(f"train.init_from continues a LoRA/DoRA adapter; train.method is {cfg.method}",
                          hint="for a full/freeze version, set model.name to its train/model folder instead")
    folder = Path(cfg.init_from)
    adapter = folder / "train" / "adapter" if (folder / "train" / "adapter").is_dir() else folder
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"train.init_from: {folder} holds no adapter (no adapter_config.json)")
    config = _with_fused_layers(LoraConfig.from_pretrained(str(adapter)), cfg.method)
    return PeftModel.from_pretrained(model, str(adapter), config=config, is_trainable=True)


def _add_virtual_tokens(model: Any, cfg: TrainConfig) -> Any:
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

    kind = PrefixTuningConfig if cfg.method == "prefix" else PromptTuningConfig
    return get_peft_model(model, kind(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens))


def _freeze_lower_layers(model: Any, n_top: int) -> None:
    decoder = model.get_decoder()
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ConfigError(f"train.method: freeze cannot find the decoder blocks of {type(model).__name__}",
                          hint="use train.method: lora")
    if n_top > len(layers):
        raise ConfigError(f"train.freeze_trainable_layers={n_top} but the model has {len(layers)} layers",
                          hint=f"choose 1..{len(layers)}")
    for p in model.parameters():
        p.requires_grad_(False)
    top = list(layers)[len(layers) - n_top :]
    norm = getattr(decoder, "norm", None)
    for module in [*top, *([norm] if norm is not None else [])]:
        for p in module.parameters():
            p.requires_grad_(True)


def _prepare_4bit(model: Any) -> Any:
    """QLoRA: the base was loaded as 4-bit NF4 by `models.load_model(nf4=True)` (revision and trust rules
    as every load); here it gets k-bit training preparation (norms in fp32, input gradients enabled)."""
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_loaded_in_4bit", False):
        raise ConfigError("train.method: qlora needs the base loaded in 4-bit (models.load_model(nf4=True))")
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
