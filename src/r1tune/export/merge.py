"""Turn a run's result into a plain safetensors model folder: merge a LoRA adapter into its base weights,
or copy the weights a `full`/`freeze` run trained.

The result (bf16 by default, fp32 on request) loads with `AutoModelForCausalLM.from_pretrained` anywhere,
with no PEFT dependency, has a model card (`README.md`, export/card.py) and, verified by loading it back
(export/verify.py), `verify.json`; it carries `r1tune_export.json` (`artifacts.ExportProvenance`: base model, source run, result kind, chat format,
reasoning mode) so it can be traced back to its run, and so r1tune prompts it exactly as it was trained
(`models.loading._export_provenance`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

from r1tune.artifacts import ExportProvenance, write_artifact
from r1tune.config import ModelConfig
from r1tune.errors import R1TuneError
from r1tune.models.loading import EXPORT_MARKER
from r1tune.rundir import RunDir

ExportDtype = Literal["bf16", "fp32"]


def merge_adapter(model_cfg: ModelConfig, adapter_dir: Path, tmp: Path, dtype: ExportDtype) -> None:
    """Load base + adapter, fold the adapter into the weights, and save model and tokenizer into `tmp`."""
    import torch

    from r1tune import models

    loaded = models.load(model_cfg, adapter=adapter_dir)
    merged = loaded.model.merge_and_unload()  # merged in fp32, then stored in the export dtype
    merged.to(torch.bfloat16 if dtype == "bf16" else torch.float32).save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)


def copy_whole_model(model_dir: Path, tmp: Path, dtype: ExportDtype) -> None:
    """Export a `full`/`freeze` run: its `train/model/` already is a standalone model, stored in `dtype`."""
    import torch

    from r1tune.errors import ModelLoadError
    from r1tune.models.loading import load_model, resolve_model_source

    if not any(Path(model_dir).glob("*.safetensors")):
        raise ModelLoadError(f"{model_dir} holds no safetensors weights", hint="re-run `r1tune train` for this run")
    if dtype == "fp32":
        shutil.copytree(model_dir, tmp)
        return
    # Everything but the weights is copied; fp32 shards left beside the bf16 ones would be what an index loads.
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    source = resolve_model_source(ModelConfig(name=str(model_dir)))
    load_model(source, ModelConfig(name=str(model_dir))).to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)


def export_run(run: RunDir, out_dir: Path, dtype: ExportDtype = "bf16", verify: bool = True,
               fmt: Literal["merged", "gguf"] = "merged", quant: str = "q8_0") -> tuple[Path, dict | None]:
    """Export a run's result with the provenance that lets r1tune prompt it exactly as it was trained, a
    model card, and (with `verify`) the proof that it answers like the run. Returns (folder, verification).
    `gguf` writes one `model-<quant>.gguf` instead of the safetensors folder. Everything is written into a
    temporary folder that replaces `out_dir` only when complete."""
    from r1tune.export.card import model_card
    from r1tune.export.verify import VERIFY_FILE, verify_export

    _check_writable(out_dir)
    if fmt == "gguf":
        _check_gguf_source(run, quant)
    cfg = run.load_config()
    info = run.read_info()
    provenance = ExportProvenance(
        base_model=str(info.get("model") or cfg.model.name), source=str(run.path), kind=run.result_kind or "adapter",
        chat_format=str(info.get("chat_format") or cfg.model.chat_format), reasoning=cfg.train.reasoning,
        train_on_prompt=cfg.train.train_on_prompt, r1tune_version=str((info.get("versions") or {}).get("r1tune", "unknown")))
    tmp = _fresh_tmp(out_dir)
    weights = tmp / "hf" if fmt == "gguf" else tmp
    if run.trains_whole_model:
        copy_whole_model(run.whole_model, weights, "fp32" if fmt == "gguf" else dtype)
    else:
        merge_adapter(cfg.model, run.adapter, weights, "fp32" if fmt == "gguf" else dtype)
    gguf_file = _to_gguf(weights, tmp, quant) if fmt == "gguf" else None
    write_artifact(tmp / EXPORT_MARKER, provenance)  # its one writer; loading the export needs it
    stored = quant if fmt == "gguf" else dtype
    check = verify_export(run, tmp, stored, gguf_file=gguf_file) if verify else None
    if check is not None:
        (tmp / VERIFY_FILE).write_text(json.dumps(check, indent=2), encoding="utf-8")
    (tmp / "README.md").write_text(model_card(run, provenance, stored, check), encoding="utf-8")
    return _finish(tmp, out_dir), check


def _check_gguf_source(run: RunDir, quant: str) -> None:
    """Architecture and quantisation are checked on the base model's config, before any merging."""
    from r1tune.export.gguf_writer import check_gguf_export
    from r1tune.models.loading import resolve_model_source

    source = run.whole_model if run.trains_whole_model else Path(resolve_model_source(run.load_config().model).location)
    if not (source / "config.json").is_file():
        raise R1TuneError(f"GGUF export needs the model's config.json; {source} has none")
    check_gguf_export(source, quant)


def _to_gguf(weights: Path, tmp: Path, quant: str) -> str:
    """Write `model-<quant>.gguf` beside the merged weights, then drop them (the GGUF is the export)."""
    from r1tune.export.gguf_writer import write_gguf

    name = f"model-{quant}.gguf"
    write_gguf(weights, tmp / name, quant)
    shutil.rmtree(weights)
    return name


def _check_writable(out_dir: Path) -> None:
    """Fail before any heavy work when the export cannot be written."""
    parent = out_dir.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise R1TuneError(f"cannot write the export: {parent} does not exist or is not writable",
                          hint="choose another --out folder")


def _fresh_tmp(out_dir: Path) -> Path:
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _finish(tmp: Path, out_dir: Path) -> Path:
    """Swap the finished folder in: a crash never leaves half an export."""
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
