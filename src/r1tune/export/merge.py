"""Turn a run's result into a plain safetensors model folder: merge a LoRA adapter into its base weights,
or copy the weights a `full`/`freeze` run trained.

The result loads with `AutoModelForCausalLM.from_pretrained` anywhere, with no PEFT dependency, and carries
`r1tune_export.json` (`artifacts.ExportProvenance`: base model, source run, result kind, chat format,
reasoning mode) so it can be traced back to its run, and so r1tune prompts it exactly as it was trained
(`models.loading._export_provenance`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from r1tune.artifacts import ExportProvenance, write_artifact
from r1tune.config import ModelConfig
from r1tune.models.loading import EXPORT_MARKER
from r1tune.rundir import RunDir


def merge_adapter(model_cfg: ModelConfig, adapter_dir: Path, out_dir: Path, provenance: ExportProvenance) -> Path:
    """Load base + adapter, fold the adapter into the weights, and save model, tokenizer and provenance."""
    from r1tune import models

    loaded = models.load(model_cfg, adapter=adapter_dir)
    merged = loaded.model.merge_and_unload()
    tmp = _fresh_tmp(out_dir)
    merged.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    return _finish(tmp, out_dir, provenance)


def copy_whole_model(model_dir: Path, out_dir: Path, provenance: ExportProvenance) -> Path:
    """Export a `full`/`freeze` run: its `train/model/` already is a standalone model, so copy it as is."""
    from r1tune.errors import ModelLoadError

    if not any(Path(model_dir).glob("*.safetensors")):
        raise ModelLoadError(f"{model_dir} holds no safetensors weights", hint="re-run `r1tune train` for this run")
    tmp = _fresh_tmp(out_dir)
    shutil.copytree(model_dir, tmp)
    return _finish(tmp, out_dir, provenance)


def export_run(run: RunDir, out_dir: Path) -> Path:
    """Export a run's result with the provenance that lets r1tune prompt it exactly as it was trained."""
    cfg = run.load_config()
    info = run.read_info()
    provenance = ExportProvenance(
        base_model=str(info.get("model") or cfg.model.name), source=str(run.path), kind=run.result_kind or "adapter",
        chat_format=str(info.get("chat_format") or cfg.model.chat_format), reasoning=cfg.train.reasoning,
        train_on_prompt=cfg.train.train_on_prompt, r1tune_version=str((info.get("versions") or {}).get("r1tune", "unknown")))
    if run.trains_whole_model:
        return copy_whole_model(run.whole_model, out_dir, provenance)
    return merge_adapter(cfg.model, run.adapter, out_dir, provenance)


def _fresh_tmp(out_dir: Path) -> Path:
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _finish(tmp: Path, out_dir: Path, provenance: ExportProvenance) -> Path:
    """Write the provenance file (its one writer), then swap the finished folder in: a crash never leaves
    half an export."""
    write_artifact(tmp / EXPORT_MARKER, provenance)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
