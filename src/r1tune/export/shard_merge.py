"""Merge a LoRA adapter into its base (or store a trained model in another dtype) one safetensors shard at a
time.

peft's `merge_and_unload` needs the whole base model in memory in fp32 (the sum W + s·BA is taken in fp32):
4 bytes a parameter, 280 GB of RAM for a 70B base, which no export machine has. Here every base shard is
read tensor by tensor, each adapted weight gets its update in fp32 (the same operations in the same order as
peft, so the result is bit-identical) and is stored in the export dtype, and the shard is written before the
next is read: peak memory is one shard in the export dtype plus one fp32 matrix and the adapter. Adapters
this plain sum does not describe (DoRA, per-module rank or alpha patterns, biases, saved modules, fan-in/
fan-out weights) and checkpoints whose tensor names differ from the model's are left to peft's merge.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADAPTER_PREFIX = "base_model.model."
INDEX_FILE = "model.safetensors.index.json"
# adapter_config.json settings under which a weight's update is not the plain scaling·B@A.
_UNSUPPORTED = {"use_dora": "DoRA", "fan_in_fan_out": "fan-in/fan-out weights", "lora_bias": "LoRA biases",
                "modules_to_save": "saved whole modules", "rank_pattern": "per-module ranks",
                "alpha_pattern": "per-module alphas", "trainable_token_indices": "trained token rows",
                "layer_replication": "replicated layers"}


@dataclass(frozen=True)
class LoraUpdate:
    """One adapted weight: its checkpoint name and the factors of its update."""

    a_key: str
    b_key: str


def why_not_streamed(adapter_config: dict[str, Any]) -> str | None:
    """None when every update of this adapter is scaling·B@A; otherwise what makes it different."""
    if adapter_config.get("peft_type", "LORA") != "LORA":
        return f"a {adapter_config.get('peft_type')} adapter"
    if adapter_config.get("bias", "none") != "none":
        return "trained biases"
    for key, what in _UNSUPPORTED.items():
        if adapter_config.get(key):
            return what
    return None


def lora_updates(adapter_keys: list[str]) -> dict[str, LoraUpdate]:
    """Base weight name → its adapter factors, from the adapter's tensor names."""
    updates = {}
    for key in adapter_keys:
        if key.endswith(".lora_A.weight"):
            module = key[len(ADAPTER_PREFIX):-len(".lora_A.weight")] if key.startswith(ADAPTER_PREFIX) else None
            if module is None:
                continue
            updates[f"{module}.weight"] = LoraUpdate(key, key.replace(".lora_A.weight", ".lora_B.weight"))
    return updates


def scaling(adapter_config: dict[str, Any], rank: int) -> float:
    """peft's LoRA scaling: alpha / r, or alpha / sqrt(r) with rsLoRA."""
    alpha = adapter_config["lora_alpha"]
    return alpha / math.sqrt(rank) if adapter_config.get("use_rslora") else alpha / rank


def base_shards(folder: Path) -> list[Path]:
    """The base's safetensors files, in index order when there is an index."""
    index = folder / INDEX_FILE
    if index.is_file():
        names = dict.fromkeys(json.loads(index.read_text())["weight_map"].values())
        return [folder / name for name in names]
    return sorted(folder.glob("*.safetensors"))


@dataclass(frozen=True)
class MergePlan:
    """What a shard-by-shard merge reads: the base's shards, the adapter's file and its updates."""

    base_dir: Path
    shards: list[Path]
    adapter_file: Path
    updates: dict[str, LoraUpdate]
    adapter_config: dict[str, Any]


def plan_merge(base_dir: Path, adapter_dir: Path) -> MergePlan | str:
    """The plan for merging this adapter into this base shard by shard, or why it needs peft's in-memory merge."""
    from safetensors import safe_open

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    reason = why_not_streamed(config)
    if reason is not None:
        return reason
    shards = base_shards(base_dir)
    names: set[str] = set()
    for shard in shards:
        with safe_open(str(shard), "pt") as f:
            names.update(f.keys())
    adapter_file = adapter_dir / "adapter_model.safetensors"
    with safe_open(str(adapter_file), "pt") as adapter:
        updates = lora_updates(list(adapter.keys()))  # noqa: SIM118
    missing = sorted(set(updates) - names)
    if not shards or missing:
        return f"the base checkpoint has no tensor {missing[0]}" if missing else "the base has no safetensors"
    return MergePlan(base_dir, shards, adapter_file, updates, config)


def merge_by_shard(base_dir: Path, adapter_dir: Path, out: Path, dtype: Any) -> str | None:
    """Write base + adapter as safetensors shards in `dtype` into `out` (config included, tokenizer not).
    Returns None when done, or why this adapter or checkpoint needs peft's in-memory merge (nothing is
    written then)."""
    plan = plan_merge(base_dir, adapter_dir)
    if isinstance(plan, str):
        return plan
    write_merged_shards(plan, out, dtype)
    return None


def write_merged_shards(plan: MergePlan, out: Path, dtype: Any) -> None:
    """The plan's merged shards in `dtype`, one in memory at a time, with the base's config and index."""
    from safetensors import safe_open

    out.mkdir(parents=True, exist_ok=True)
    with safe_open(str(plan.adapter_file), "pt") as adapter:
        sizes = [_write_merged_shard(shard, out / shard.name, adapter, plan, dtype) for shard in plan.shards]
    _write_config(plan.base_dir, out, dtype, sum(sizes))


def merged_stream(plan: MergePlan) -> Iterator[tuple[str, Any]]:
    """Every tensor of the merged model, one at a time in checkpoint order (adapted weights in fp32, the
    rest as stored), for a converter that writes them as they come (export/gguf_writer.py)."""
    from safetensors import safe_open

    with safe_open(str(plan.adapter_file), "pt") as adapter:
        for shard in plan.shards:
            yield from _merged_tensors(shard, adapter, plan)


def cast_by_shard(model_dir: Path, out: Path, dtype: Any) -> None:
    """A whole trained model's shards stored in `dtype`, one shard in memory at a time (config and index
    follow; the other files are the caller's to copy)."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = [_write_merged_shard(shard, out / shard.name, None, None, dtype) for shard in base_shards(model_dir)]
    _write_config(model_dir, out, dtype, sum(sizes))


def _merged_tensors(shard: Path, adapter: Any, plan: MergePlan | None) -> Iterator[tuple[str, Any]]:
    """One shard's tensors, adapted weights with their update in fp32 (peft's order: (B@A)·s, then +)."""
    from safetensors import safe_open

    with safe_open(str(shard), "pt") as base:
        for key in base.keys():  # noqa: SIM118
            tensor = base.get_tensor(key)
            update = plan.updates.get(key) if plan is not None else None
            if update is not None:
                a, b = adapter.get_tensor(update.a_key).float(), adapter.get_tensor(update.b_key).float()
                tensor = tensor.float() + (b @ a) * scaling(plan.adapter_config, a.shape[0])
            yield key, tensor


def _write_merged_shard(shard: Path, dest: Path, adapter: Any, plan: MergePlan | None, dtype: Any) -> int:
    """One shard: every tensor in `dtype`, adapted weights with their update; returns the bytes written."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors = {key: tensor.to(dtype) if tensor.is_floating_point() else tensor
               for key, tensor in _merged_tensors(shard, adapter, plan)}
    with safe_open(str(shard), "pt") as base:
        metadata = base.metadata() or {}
    save_file(tensors, str(dest), metadata={**metadata, "format": "pt"})
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _write_config(base_dir: Path, out: Path, dtype: Any, total_size: int) -> None:
    """The base's config (with the stored dtype), generation config and shard index."""
    config = json.loads((base_dir / "config.json").read_text())
    stored = str(dtype).removeprefix("torch.")
    config.update({key: stored for key in ("dtype", "torch_dtype") if key in config} or {"dtype": stored})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if (base_dir / "generation_config.json").is_file():
        shutil.copyfile(base_dir / "generation_config.json", out / "generation_config.json")
    index = base_dir / INDEX_FILE
    if index.is_file():
        data = json.loads(index.read_text())
        data["metadata"] = {**data.get("metadata", {}), "total_size": total_size}
        (out / INDEX_FILE).write_text(json.dumps(data, indent=2) + "\n")
