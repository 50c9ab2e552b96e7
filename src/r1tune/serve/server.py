"""Start the server: resolve the target, build the runtime, run uvicorn (in the foreground for `r1tune serve`,
or in a thread for a check or a test that talks to it over HTTP)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from r1tune.serve.runtime import ServeTarget, build_runtime, resolve_target

log = logging.getLogger(__name__)


def prepare_target(path: Path, host: str | None = None, port: int | None = None,
                   overrides: Sequence[str] = ()) -> ServeTarget:
    """Resolve a project file or run folder, with `--host`/`--port` applied (and validated) first."""
    target = resolve_target(path, list(overrides))
    if host is not None:
        target.cfg.serve.host = host
    if port is not None:
        target.cfg.serve.port = port
    return target


def default_threads() -> int:
    """One torch thread per core except one, which the event loop, tokenizer and database get: intra-op
    threads spin while they wait, so on a 2-core machine with other work a second torch thread made every
    decoding step 3-30x slower (benchmarks/bench_serve.py, naive endpoint and r1tune alike)."""
    return max(1, (os.cpu_count() or 1) - 1)


def run_server(target: ServeTarget, announce: Callable[[str], None] = log.warning) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM finish running requests for up to 5 s)."""
    import torch
    import uvicorn

    from r1tune.serve.app import create_app

    serve = target.cfg.serve
    torch.set_num_threads(serve.threads or default_threads())
    runtime = build_runtime(target)
    app = create_app(runtime)
    announce(f"serving {', '.join(runtime.model_ids())} on http://{serve.host}:{serve.port}/v1 "
             f"(batch ≤ {serve.max_batch_size}, {'API keys required' if runtime.keys.enabled else 'no API keys'})")
    uvicorn.run(app, host=serve.host, port=serve.port, log_level="warning", timeout_graceful_shutdown=5,
                limit_concurrency=serve.max_waiting + serve.max_batch_size + 64)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving_in_thread(app: Any, start_seconds: float = 30.0) -> Iterator[str]:
    """Serve an ASGI `app` with uvicorn in a daemon thread on a free loopback port; yields its base URL and
    stops the server on exit. Fails loudly if it is not listening within `start_seconds`."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_seconds
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start listening on 127.0.0.1:{server.config.port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(20)
