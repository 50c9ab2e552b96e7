"""A folder vLLM serves as it is, and the exact `vllm serve` command for it.

An adapter run exports base reference + adapter (vLLM's multi-LoRA: one base, many adapters); vLLM rejects
adapters with `modules_to_save` and DoRA, so those are refused here, before any work, with the way out
(`--format merged`). A full/freeze run exports its weights (bf16). Either way the folder carries r1tune's
chat format as a Jinja template (`chat_template.jinja`, export/templates.py), so vLLM prompts the model
with the text it was trained on rather than the base model's own template.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from r1tune.errors import R1TuneError
from r1tune.export.templates import jinja_template
from r1tune.models.chat_format import ChatRenderer

CHAT_TEMPLATE = "chat_template.jinja"
COMMAND_FILE = "vllm-serve.sh"
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


def check_vllm_adapter(adapter_dir: Path) -> dict:
    """The adapter's config when vLLM can serve it; a clear error naming the blocker otherwise."""
    config_file = adapter_dir / "adapter_config.json"
    if not config_file.is_file():
        raise R1TuneError(f"no LoRA adapter at {adapter_dir}", hint="re-run `r1tune train` for this run")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("use_dora"):
        raise R1TuneError("vLLM cannot serve DoRA adapters (adapter_config.json has use_dora: true)",
                          hint="export --format merged and serve the merged folder with vLLM")
    if config.get("modules_to_save"):
        raise R1TuneError(f"vLLM cannot serve adapters with modules_to_save ({config['modules_to_save']})",
                          hint="export --format merged and serve the merged folder with vLLM")
    return config


def write_adapter_folder(adapter_dir: Path, out: Path, base_model: str, name: str, renderer: ChatRenderer) -> str:
    """Copy the adapter beside the chat template; returns the serve command (also written to a script)."""
    config = check_vllm_adapter(adapter_dir)
    shutil.copytree(adapter_dir, out / "adapter")
    rank = next((r for r in LORA_RANKS if r >= int(config.get("r", 8))), LORA_RANKS[-1])
    args = [base_model, "--enable-lora", "--lora-modules", f"{name}=./adapter", "--max-lora-rank", str(rank)]
    return _write_command(out, args, renderer)


def write_model_folder(out: Path, renderer: ChatRenderer) -> str:
    """For weights already saved in `out/model` (a full/freeze run's, in bf16)."""
    return _write_command(out, ["./model"], renderer)


def _write_command(out: Path, args: list[str], renderer: ChatRenderer) -> str:
    (out / CHAT_TEMPLATE).write_text(jinja_template(renderer), encoding="utf-8")
    args += ["--chat-template", f"./{CHAT_TEMPLATE}"]
    if renderer.fmt.think:
        args += ["--reasoning-parser", "deepseek_r1"]
    command = "vllm serve " + " ".join(shlex.quote(a) for a in args)
    (out / COMMAND_FILE).write_text(f'#!/bin/sh\n# Run from this folder; add --tensor-parallel-size N for N GPUs.\ncd "$(dirname "$0")"\nexec {command} "$@"\n',
                                    encoding="utf-8")
    (out / COMMAND_FILE).chmod(0o755)
    return command
