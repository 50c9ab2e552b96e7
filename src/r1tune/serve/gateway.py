"""`serve.engine: vllm | openai`: r1tune as the gateway in front of an engine that generates elsewhere.

`openai` points at an OpenAI-compatible server that is already running (`serve.upstream_url`). `vllm`
starts vLLM's OpenAI server as a child process on 127.0.0.1 (the base model, `--enable-lora` with runtime
adapter loading, tensor parallel over this machine's GPUs), starts it again if it dies (serve/supervised.py)
and stops it with the server. Either way the upstream gets r1tune's token ids (serve/upstream.py) and r1tune
keeps the front.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from r1tune.config.serve import vllm_flag_name
from r1tune.errors import ConfigError
from r1tune.serve.supervised import SupervisedServer
from r1tune.serve.upstream import UpstreamEngine

log = logging.getLogger(__name__)
AUTO_CONTEXT_SINCE = (0, 14)


def upstream_engine(cfg: Any, target: Any, loaded: Any, base_id: str,
                    name: str) -> tuple[UpstreamEngine, int | None]:
    """The engine `name` (`openai` or `vllm`, as `serve.engine` resolved), and the model's context length as
    the upstream reports it."""
    serve = cfg.serve
    if name == "openai":
        if not serve.upstream_url:
            raise ConfigError("serve.engine: openai needs serve.upstream_url",
                              hint="e.g. serve.upstream_url: http://10.0.0.7:8000/v1")
        url, child = serve.upstream_url, None
    else:
        url, child = _start_vllm(cfg, target, loaded, base_id)
    engine = UpstreamEngine(url, base_id, loaded.renderer.stop_token_ids, serve.upstream_api_key_env,
                            max_concurrent=serve.max_batch_size, max_waiting=serve.max_waiting,
                            name=name, send_stop_ids=name == "vllm", loads_adapters=name == "vllm")
    if child is not None:
        engine.on_stop, engine.child_problem, child.on_restart = child.stop, child.problem, engine.reload_adapters
    try:
        contexts = engine.upstream_contexts()  # an unreachable upstream fails at start-up, with its address
    except Exception:
        engine.stop()  # and takes the vLLM child it started with it
        raise
    if base_id not in contexts:
        engine.base_model = next(iter(contexts), base_id)
        log.info("the upstream serves %s; base requests go to %s", list(contexts), engine.base_model)
    context = contexts.get(engine.base_model)
    log.info("the upstream's context: %s tokens", context or "not reported")
    return engine, context


def vllm_command(location: str, base_id: str, port: int, gpus: int, max_lora_rank: int = 64,
                 extra_args: list[str] | tuple[str, ...] = (), vllm_version: str | None = None) -> list[str]:
    """vLLM's OpenAI server for r1tune's gateway: loopback only, every adapter loaded at run time, the
    context fitted to the GPU's memory where vLLM can (`vllm_version`, the installed one), then the user's
    `serve.vllm_args`."""
    # the module behind `vllm serve` from 0.8 on, run by this Python (so the venv's vLLM, whatever PATH holds);
    # `vllm.entrypoints.openai.api_server` still starts in 0.34 but is deprecated there
    command = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", "--model", location,
               "--served-model-name", base_id, "--host", "127.0.0.1", "--port", str(port), "--enable-lora",
               "--max-lora-rank", str(max_lora_rank), "--tensor-parallel-size", str(max(gpus, 1))]
    sets_context = any(vllm_flag_name(arg) == "--max-model-len" for arg in extra_args)
    if not sets_context and _fits_context_itself(vllm_version):
        command += ["--max-model-len", "auto"]
    return command + list(extra_args)


def _fits_context_itself(vllm_version: str | None) -> bool:
    """Whether this vLLM takes `--max-model-len auto` (0.14 and later): the longest context whose KV cache
    fits beside the weights. Without it vLLM reserves the model's whole window (128k tokens for an R1
    distill) and refuses to start where that does not fit."""
    from packaging.version import InvalidVersion, Version

    try:
        return vllm_version is not None and Version(vllm_version).release >= AUTO_CONTEXT_SINCE
    except InvalidVersion:
        return False


def installed_vllm_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vllm")
    except PackageNotFoundError:
        return None


def _start_vllm(cfg: Any, target: Any, loaded: Any, base_id: str) -> tuple[str, SupervisedServer]:
    """vLLM's server as a supervised child process, once it is healthy: (its /v1 URL, its supervisor)."""
    import torch

    location = str(target.weights_dir or loaded.source.location)
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    serve = cfg.serve
    command = vllm_command(location, base_id, serve.vllm_port, torch.cuda.device_count(), serve.max_lora_rank,
                           serve.vllm_args, installed_vllm_version())
    url = f"http://127.0.0.1:{serve.vllm_port}"
    child = SupervisedServer(command, url, env)
    child.start()
    return f"{url}/v1", child
