"""Small builders shared by tests (records, configs, projects)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r1tune.data.records import Message, Record

PRODUCTS = [
    ("mug", "ceramic", "blue"), ("scarf", "wool", "red"), ("lamp", "brass", "gold"), ("bag", "leather", "brown"),
    ("kettle", "steel", "silver"), ("pillow", "linen", "white"), ("watch", "titanium", "black"),
    ("vase", "glass", "green"), ("chair", "oak", "natural"), ("towel", "cotton", "grey"),
]


def product_records(n: int = 20) -> list[Record]:
    """Tiny, very regular records: a model can learn them in a few steps."""
    out = []
    for i in range(n):
        name, material, color = PRODUCTS[i % len(PRODUCTS)]
        out.append(Record([
            Message("user", f"Describe the {color} {name} #{i}."),
            Message("assistant", f"This {color} {name} is made of {material}. Buy it today!"),
        ]))
    return out


def varied_records(n: int) -> list[Record]:
    """Product records of clearly different lengths, so packs hold several examples of different sizes."""
    out = []
    for i, r in enumerate(product_records(n)):
        extra = " It is lovely." * (i % 4)
        out.append(Record([r.messages[0], Message("assistant", r.messages[1].content + extra)]))
    return out


def write_messages_jsonl(path: Path, records: list[Record]) -> Path:
    path.write_text("".join(json.dumps({"messages": [m.to_dict() for m in r.messages]}) + "\n" for r in records))
    return path


def write_project(folder: Path, model_dir: Path, n_records: int = 30, extra: str = "") -> Path:
    """A complete project file over a messages JSONL, using a tiny local model."""
    write_messages_jsonl(folder / "data.jsonl", product_records(n_records))
    config = folder / "r1tune.yaml"
    config.write_text(f"""\
project: {{name: tiny, seed: 1}}
data:
  sources: [{{path: data.jsonl}}]
  val_ratio: 0.1
  test_ratio: 0.2
model: {{name: "{model_dir}"}}
train: {{epochs: 1, batch_size: 4, max_seq_len: 96, lr: 0.001, log_every: 1, precision: fp32}}
eval: {{max_new_tokens: 8, batch_size: 4}}
{extra}""")
    return config


def with_fp16_loss_scaling(accelerator: Any, set_attr: Callable[[Any, str, Any], None] = setattr) -> Any:
    """What accelerate sets up in fp16 on a GPU without bf16 (fp16 mixed precision, its GradScaler), which it
    refuses on a CPU although torch runs fp16 autocast and loss scaling there. DeepSpeed scales the loss
    itself. `set_attr`: pytest's `monkeypatch.setattr` in-process, where accelerate's state is shared."""
    import torch

    if accelerator.state.deepspeed_plugin is None:
        set_attr(accelerator.state, "_mixed_precision", "fp16")
        accelerator.native_amp, accelerator.scaler = True, torch.amp.GradScaler("cpu")
    return accelerator
