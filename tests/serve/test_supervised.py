"""The vLLM child of `serve.engine: vllm` is started again when it dies, with its run-time adapters loaded
again before traffic flows; one that keeps dying is left down and says so; one that cannot start is a
clear start-up error. The child here is tests/serve/fake_vllm.py, which forgets its adapters when it dies."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import wait_until

from r1tune.errors import ConfigError
from r1tune.serve.server import free_port
from r1tune.serve.supervised import SupervisedServer
from r1tune.serve.upstream import UpstreamEngine

FAKE_VLLM = str(Path(__file__).with_name("fake_vllm.py"))


@pytest.fixture
def child():
    port = free_port()
    server = SupervisedServer([sys.executable, FAKE_VLLM, str(port)], f"http://127.0.0.1:{port}",
                              first_delay_s=0.05, start_timeout_s=30)
    server.start()
    yield server
    server.stop()


def _kill(server: SupervisedServer) -> int:
    pid = server.pid
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_child_that_dies_is_started_again_with_its_adapters(child, tmp_path):
    engine = UpstreamEngine(f"{child.url}/v1", "base", [0], loads_adapters=True, name="vllm")
    engine.child_problem, child.on_restart = child.problem, engine.reload_adapters
    engine.attach_adapter("support", tmp_path)
    assert engine.upstream_models() == ["base", "support"]
    child.first_delay_s = 1.0  # down for a second at least, so that the state in between can be read
    first = _kill(child)
    wait_until(lambda: child.problem() is not None)
    assert child.problem() == "the vLLM server this gateway started has exited (code -9); restarting it"
    assert engine.problem() == child.problem()  # /health answers 503 with it
    wait_until(lambda: child.problem() is None)
    assert child.pid != first and child.restarts == 1
    assert engine.upstream_models() == ["base", "support"]  # loaded again before the problem cleared
    assert engine.upstream_contexts() == {"base": 40960, "support": 40960}


@pytest.mark.parametrize(("reported", "context"), [(40960, 40960), (None, None), (0, None), (-1, None),
                                                   ("40960", None), (True, None), (4096.0, None)])
def test_only_a_positive_whole_context_length_counts(reported, context):
    from r1tune.serve.upstream import _context_length

    assert _context_length(reported) == context


def test_a_child_that_keeps_dying_is_left_down(child):
    child.max_restarts = 1
    _kill(child)
    wait_until(lambda: child.restarts == 1 and child.problem() is None)
    last = _kill(child)
    wait_until(lambda: child.problem() is not None and "left down" in child.problem())
    assert child.problem() == ("the vLLM server this gateway started has exited (code -9) and is left down: "
                               "it exited 2 times within 10 minutes")
    time.sleep(0.5)
    assert child.pid == last  # no further start
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{child.url}/health", timeout=2)


def test_a_stopped_child_is_not_started_again(child):
    pid = child.pid
    child.stop()
    time.sleep(0.5)
    assert child.pid == pid and child.restarts == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{child.url}/health", timeout=2)


def test_a_child_that_cannot_start_names_its_exit_code():
    server = SupervisedServer([sys.executable, "-c", "raise SystemExit(3)"], f"http://127.0.0.1:{free_port()}",
                              first_delay_s=0.05)
    with pytest.raises(ConfigError, match="vLLM exited with code 3 while starting"):
        server.start()


def test_a_child_that_never_answers_is_stopped_and_named():
    server = SupervisedServer([sys.executable, "-c", "import time; time.sleep(120)"],
                              f"http://127.0.0.1:{free_port()}", first_delay_s=0.05, start_timeout_s=1)
    with pytest.raises(ConfigError, match="vLLM did not become healthy within 1 s"):
        server.start()
    assert server._child.poll() is not None  # not left running


def test_a_child_whose_command_cannot_run_any_more_is_left_down_with_the_reason(child, tmp_path):
    child.command = [str(tmp_path / "removed-venv" / "python"), FAKE_VLLM]
    _kill(child)
    wait_until(lambda: child.problem() is not None and "cannot be started again" in child.problem())
    assert "No such file or directory" in child.problem()


def test_a_restart_whose_adapters_cannot_be_loaded_again_is_retried_then_left_down(child):
    """on_restart failing (here always) stops the new process; each try counts as an exit."""
    child.max_restarts = 2

    def reload_fails():
        raise RuntimeError("the upstream refused load_lora_adapter (400)")

    child.on_restart = reload_fails
    _kill(child)
    wait_until(lambda: child.problem() is not None and "left down" in child.problem())
    assert child.restarts == 0 and "it exited 3 times" in child.problem()


def test_a_vllm_child_whose_gateway_cannot_start_is_stopped_with_it(monkeypatch):
    """serve/gateway.py: the child is healthy but does not list its models, so the gateway's start-up fails,
    and the child does not outlive it."""
    from types import SimpleNamespace

    from r1tune.errors import R1TuneError
    from r1tune.serve import gateway

    port = free_port()
    child = SupervisedServer([sys.executable, FAKE_VLLM, str(port), "broken-models"], f"http://127.0.0.1:{port}",
                             first_delay_s=0.05)
    monkeypatch.setattr(gateway, "_start_vllm", lambda *args: (child.start() or f"{child.url}/v1", child))
    serve = SimpleNamespace(upstream_api_key_env=None, max_batch_size=2, max_waiting=2)
    loaded = SimpleNamespace(renderer=SimpleNamespace(stop_token_ids=[0]))
    with pytest.raises(R1TuneError, match="cannot list the upstream's models"):
        gateway.upstream_engine(SimpleNamespace(serve=serve), None, loaded, "base", "vllm")
    assert child._child.poll() is not None
