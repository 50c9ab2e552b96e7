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

from r1tune.errors import ConfigError
from r1tune.serve.supervised import SupervisedServer
from r1tune.serve.upstream import UpstreamEngine

log = logging.getLogger(__name__)


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
        models = engine.upstream_models()  # an unreachable upstream fails at start-up, with its address
    except Exception:
        engine.stop()  # and takes the vLLM child it started with it
        raise
    if base_id not in models:
        engine.base_model = models[0] if models else base_id
        log.info("the upstream serves %s; base requests go to %s", models, engine.base_model)
    return engine, None


def vllm_command(location: str, base_id: str, port: int, gpus: int, max_lora_rank: int = 64,
                 extra_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """vLLM's OpenAI server for r1tune's gateway: loopback only, every adapter loaded at run time, then the
    user's `serve.vllm_args`."""
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", location,
            "--served-model-name", base_id, "--host", "127.0.0.1", "--port", str(port), "--enable-lora",
            "--max-lora-rank", str(max_lora_rank), "--tensor-parallel-size", str(max(gpus, 1)), *extra_args]


def _start_vllm(cfg: Any, target: Any, loaded: Any, base_id: str) -> tuple[str, SupervisedServer]:
    """vLLM's server as a supervised child process, once it is healthy: (its /v1 URL, its supervisor)."""
    import torch

    location = str(target.weights_dir or loaded.source.location)
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    serve = cfg.serve
    command = vllm_command(location, base_id, serve.vllm_port, torch.cuda.device_count(), serve.max_lora_rank,
                           serve.vllm_args)
    url = f"http://127.0.0.1:{serve.vllm_port}"
    child = SupervisedServer(command, url, env)
    child.start()
    return f"{url}/v1", child
