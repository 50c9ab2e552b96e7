"""Merge a LoRA adapter into its base weights and save a plain safetensors model folder.

The result loads with `AutoModelForCausalLM.from_pretrained` anywhere, with no PEFT dependency.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from r1tune.config import ModelConfig


def merge_adapter(model_cfg: ModelConfig, adapter_dir: Path, out_dir: Path, chat_format: str) -> Path:
    """Load base + adapter, fold the adapter into the weights, and save model, tokenizer and format."""
    from r1tune import models

    loaded = models.load(model_cfg, adapter=adapter_dir)
    merged = loaded.model.merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    (tmp / "r1tune_export.json").write_text(json.dumps({
        "base_model": loaded.source.display_name, "adapter": str(adapter_dir), "chat_format": chat_format,
    }, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
