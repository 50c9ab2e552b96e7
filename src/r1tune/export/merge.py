"""Turn a run's result into a plain safetensors model folder: merge a LoRA adapter into its base weights,
or copy the weights a `full`/`freeze` run trained.

The result loads with `AutoModelForCausalLM.from_pretrained` anywhere, with no PEFT dependency, and carries
`r1tune_export.json` (base model, source, chat format) so it can be traced back to its run, and so r1tune
prompts it as its base preset was prompted in training (`models.loading._exported_from`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from r1tune.config import ModelConfig
from r1tune.models.loading import EXPORT_MARKER


def merge_adapter(model_cfg: ModelConfig, adapter_dir: Path, out_dir: Path, chat_format: str) -> Path:
    """Load base + adapter, fold the adapter into the weights, and save model, tokenizer and format."""
    from r1tune import models

    loaded = models.load(model_cfg, adapter=adapter_dir)
    merged = loaded.model.merge_and_unload()
    tmp = _fresh_tmp(out_dir)
    merged.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    return _finish(tmp, out_dir, {"base_model": loaded.source.display_name, "adapter": str(adapter_dir),
                                  "chat_format": chat_format})


def copy_whole_model(model_dir: Path, out_dir: Path, base_model: str, chat_format: str) -> Path:
    """Export a `full`/`freeze` run: its `train/model/` already is a standalone model, so copy it as is."""
    from r1tune.errors import ModelLoadError

    if not any(Path(model_dir).glob("*.safetensors")):
        raise ModelLoadError(f"{model_dir} holds no safetensors weights", hint="re-run `r1tune train` for this run")
    tmp = _fresh_tmp(out_dir)
    shutil.copytree(model_dir, tmp)
    return _finish(tmp, out_dir, {"base_model": base_model, "trained_weights": str(model_dir),
                                  "chat_format": chat_format})


def _fresh_tmp(out_dir: Path) -> Path:
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _finish(tmp: Path, out_dir: Path, provenance: dict[str, str]) -> Path:
    """Write the provenance file, then swap the finished folder in: a crash never leaves half an export."""
    (tmp / EXPORT_MARKER).write_text(json.dumps(provenance, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
