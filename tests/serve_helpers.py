"""Serving test helpers: r1tune's app served in a thread for a runtime, project runtimes, the two tiny
chat-format models (ChatML and DeepSeek-R1) served side by side, and waiting for a condition."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from helpers import write_messages_jsonl, write_project

from r1tune.data.records import Record
from r1tune.serve.server import serving_in_thread


@contextlib.contextmanager
def running_server(runtime) -> Iterator[str]:
    """Serve r1tune's app for `runtime`; yields the base URL."""
    from r1tune.serve import create_app

    with serving_in_thread(create_app(runtime)) as url:
        yield url


def build_project_runtime(folder: Path, model_dir: Path, serve_yaml: str = ""):
    from r1tune.configfile import load_config
    from r1tune.serve import ServeTarget, build_runtime

    config = write_project(folder, model_dir, extra=serve_yaml)
    return build_runtime(ServeTarget(load_config(config)))


@contextlib.contextmanager
def serve_formats_model(request, tmp_path_factory, serve_yaml: str) -> Iterator:
    """For a fixture parametrized over ("tiny_llama_dir", "tiny_qwen_r1_dir"): that model served with
    `serve_yaml`; yields (url, runtime, think) where `think` says whether it is the R1 (reasoning) one."""
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp(request.param)
    runtime = build_project_runtime(folder, request.getfixturevalue(request.param), serve_yaml)
    with running_server(runtime) as url:
        yield SimpleNamespace(url=url, runtime=runtime, think=bool(runtime.loaded.renderer.fmt.think))


def think_close_bias(server) -> dict[str, float]:
    """A random model never ends its reasoning on its own, as a trained R1 does: favour `</think>`."""
    if not server.think:
        return {}
    return {str(server.runtime.loaded.tokenizer.convert_tokens_to_ids("</think>")): 12}


MODEL_FORMATS = ["tiny_llama_dir", "tiny_qwen_r1_dir"]  # ChatML and DeepSeek-R1


def make_adapter_run(root: Path, name: str, model_dir: Path, records: list[Record], seed: int,
                     targets: tuple[str, ...] = ("q_proj", "v_proj"), rank: int = 4) -> Path:
    """A run folder shaped like `r1tune run` output: config.yaml, data/train.jsonl, train/adapter (random LoRA,
    non-zero so it visibly changes the base model's output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1tune.configfile import dump_config, load_config

    run = root / name
    (run / "data").mkdir(parents=True)
    project = write_project(run, model_dir)
    (run / "config.yaml").write_text(dump_config(load_config(project)))
    write_messages_jsonl(run / "data" / "train.jsonl", records)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(run / "train" / "adapter")
    return run


def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll `condition` every 50 ms; an AssertionError if it does not hold within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"the condition did not hold within {seconds:.0f} s")
