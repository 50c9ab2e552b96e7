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
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tune.artifacts import ExportProvenance, write_artifact
from r1tune.config import ModelConfig
from r1tune.errors import R1TuneError
from r1tune.export.formats import ExportDtype, ExportOptions
from r1tune.models.loading import EXPORT_MARKER
from r1tune.rundir import RunDir

if TYPE_CHECKING:
    from r1tune.export.shard_merge import MergePlan

log = logging.getLogger(__name__)


def merge_adapter(model_cfg: ModelConfig, adapter_dir: Path, tmp: Path, dtype: ExportDtype) -> None:
    """Fold the adapter into the base weights and save model and tokenizer into `tmp`: shard by shard when
    the base's safetensors are on this machine (export/shard_merge.py), else base + adapter in memory."""
    from r1tune import models
    from r1tune.export.shard_merge import write_merged_shards

    stored = storage_dtype(dtype)
    plan = shard_merge_plan(model_cfg, adapter_dir)
    if plan is None:
        merge_in_memory(model_cfg, adapter_dir, tmp, stored)
        return
    write_merged_shards(plan, tmp, stored)
    models.load(model_cfg, with_weights=False).tokenizer.save_pretrained(tmp)


def shard_merge_plan(model_cfg: ModelConfig, adapter_dir: Path) -> MergePlan | None:
    """How to merge this adapter shard by shard, or None (and why, in the log) when only peft's in-memory
    merge can."""
    from r1tune.export.shard_merge import plan_merge

    base = local_base_folder(model_cfg)
    plan = plan_merge(base, adapter_dir) if base else "the base's files are not on this machine"
    if isinstance(plan, str):
        log.info("merging the adapter in memory (fp32, whole model): %s", plan)
        return None
    return plan


def merged_tensor_stream(model_cfg: ModelConfig, adapter_dir: Path, skeleton: Path) -> Iterator[tuple[str, Any]] | None:
    """Base + adapter tensor by tensor (adapted weights in fp32), for a converter that writes each as it comes,
    with the base's config and the run's tokenizer saved into `skeleton`: no merged copy of the weights is
    ever on disk or whole in memory. None when the shard-by-shard merge cannot do this adapter or base."""
    from r1tune import models
    from r1tune.export.shard_merge import merged_stream

    plan = shard_merge_plan(model_cfg, adapter_dir)
    if plan is None:
        return None
    skeleton.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.base_dir / "config.json", skeleton / "config.json")
    models.load(model_cfg, with_weights=False).tokenizer.save_pretrained(skeleton)
    return merged_stream(plan)


def storage_dtype(dtype: ExportDtype) -> Any:
    """The torch dtype an export stores its weights in."""
    import torch

    return torch.bfloat16 if dtype == "bf16" else torch.float32


def merge_in_memory(model_cfg: ModelConfig, adapter_dir: Path, tmp: Path, stored: Any) -> None:
    """peft's merge: the whole base in fp32 plus the adapter, folded, then stored in `stored`."""
    from r1tune import models

    loaded = models.load(model_cfg, adapter=adapter_dir)
    loaded.model.merge_and_unload().to(stored).save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)


def local_base_folder(model_cfg: ModelConfig) -> Path | None:
    """The folder holding the base's safetensors: the model folder, or the hub cache's snapshot (never a
    download: training already fetched it). None when it is not on this machine."""
    from r1tune.models.loading import resolve_model_source

    source = resolve_model_source(model_cfg)
    if source.kind != "hub":
        return Path(source.location)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source.location, revision=source.revision, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def copy_whole_model(model_dir: Path, tmp: Path, dtype: ExportDtype) -> None:
    """Export a `full`/`freeze` run: its `train/model/` already is a standalone model, stored in `dtype`."""
    import torch

    from r1tune.errors import ModelLoadError
    from r1tune.export.shard_merge import cast_by_shard

    if not any(Path(model_dir).glob("*.safetensors")):
        raise ModelLoadError(f"{model_dir} holds no safetensors weights", hint="re-run `r1tune train` for this run")
    if dtype == "fp32":
        shutil.copytree(model_dir, tmp)
        return
    # Everything but the weights is copied; fp32 shards left beside the bf16 ones would be what an index loads.
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    cast_by_shard(Path(model_dir), tmp, torch.bfloat16)


def export_run(run: RunDir, out_dir: Path, opts: ExportOptions | None = None) -> tuple[Path, dict | None]:
    """Export a run's result in `opts.fmt` (export/formats.py) with the provenance that lets r1tune prompt it
    exactly as it was trained, a model card, and (with `opts.verify`) the proof that it answers like the
    run. Returns (folder, verification). Everything is written into a temporary folder that replaces
    `out_dir` only when complete; every refusal comes before any weights are touched."""
    from r1tune.export.card import model_card
    from r1tune.export.formats import build, preflight
    from r1tune.export.verify import VERIFY_FILE, verify_built

    opts = opts or ExportOptions()
    _check_writable(out_dir)
    preflight(run, opts)
    cfg = run.load_config()
    info = run.read_info()
    provenance = ExportProvenance(
        base_model=str(info.get("model") or cfg.model.name), source=str(run.path), kind=run.result_kind or "adapter",
        chat_format=str(info.get("chat_format") or cfg.model.chat_format), reasoning=cfg.train.reasoning,
        train_on_prompt=cfg.train.train_on_prompt, r1tune_version=str((info.get("versions") or {}).get("r1tune", "unknown")))
    tmp = _fresh_tmp(out_dir)
    built = build(run, tmp, opts)
    write_artifact(tmp / EXPORT_MARKER, provenance)  # its one writer; loading the export needs it
    if built.model_dir != ".":
        write_artifact(tmp / built.model_dir / EXPORT_MARKER, provenance)
    check = verify_built(run, tmp, built) if opts.verify else None
    if check is not None:
        (tmp / VERIFY_FILE).write_text(json.dumps(check, indent=2), encoding="utf-8")
    (tmp / "README.md").write_text(model_card(run, provenance, built, check), encoding="utf-8")
    return _finish(tmp, out_dir), check


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
