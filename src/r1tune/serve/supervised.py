"""A child server process that is started again when it dies: the vLLM server behind `serve.engine: vllm`.

vLLM's server can exit under a running gateway (a CUDA error, the out-of-memory killer, an NCCL timeout with
tensor parallelism). Without a restart the gateway would answer 503 until an operator or Kubernetes' liveness
probe restarted the whole pod, which on a bare machine nobody does. A watcher thread notices the exit, starts
the same command again after a back-off (1, 2, 4 ... up to 30 s), waits for its `/health`, then calls
`on_restart` (the gateway loads its run-time LoRA adapters into the new process) before traffic flows again;
if that fails, the new process is stopped and counts as one more exit. While it is down `problem()` says why,
so `/health` answers 503 with that reason. A server that keeps dying (more than `max_restarts` exits within
`RESTART_WINDOW_S`) is left down, and `problem()` says so for good: restarting it forever would hide a fault
the operator must see.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable

from r1tune.errors import ConfigError

log = logging.getLogger(__name__)
START_TIMEOUT_S = 1200  # a 70B model takes minutes to load
RESTART_WINDOW_S = 600
MAX_RESTARTS = 5  # exits within RESTART_WINDOW_S before the server is left down
MAX_DELAY_S = 30.0


class SupervisedServer:
    """`command` run as a child process serving HTTP at `url` (whose `/health` answers 200 when ready)."""

    def __init__(self, command: list[str], url: str, env: dict[str, str] | None = None, name: str = "vLLM",
                 max_restarts: int = MAX_RESTARTS, first_delay_s: float = 1.0,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.command, self.url, self.env, self.name = command, url.rstrip("/"), env, name
        self.max_restarts, self.first_delay_s, self.start_timeout_s = max_restarts, first_delay_s, start_timeout_s
        self.on_restart: Callable[[], None] | None = None
        self.restarts = 0
        self._exits: list[float] = []  # when the child exited, within the window
        self._problem: str | None = None
        self._stopping = threading.Event()
        self._child: subprocess.Popen | None = None
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def start(self) -> None:
        """Start the child and wait until it is healthy; a child that cannot start is a ConfigError here."""
        self._launch()
        failure = self._wait_healthy()
        if failure is not None:
            raise ConfigError(failure)
        self._watcher = threading.Thread(target=self._watch, name="r1tune-supervisor", daemon=True)
        self._watcher.start()

    def problem(self) -> str | None:
        """Why the child cannot answer now, or None while it runs."""
        return self._problem

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:  # first, so that it starts no child after the kill below
            self._watcher.join(timeout=10)
        self._kill()

    # -- the watcher thread ----------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            code = self._child.poll()
            if code is None:
                continue
            now = time.monotonic()
            self._exits = [t for t in self._exits if now - t < RESTART_WINDOW_S] + [now]
            if len(self._exits) > self.max_restarts:
                times = f"{len(self._exits)} time" + ("s" if len(self._exits) > 1 else "")
                self._problem = (f"the {self.name} server this gateway started has exited (code {code}) and is "
                                 f"left down: it exited {times} within {RESTART_WINDOW_S // 60} minutes")
                log.error("%s", self._problem)
                return
            self._problem = f"the {self.name} server this gateway started has exited (code {code}); restarting it"
            log.error("%s", self._problem)
            try:
                self._restart(len(self._exits))
            except OSError as err:  # the command itself cannot run any more (a removed venv, a full disk)
                self._problem = f"the {self.name} server this gateway started cannot be started again: {err}"
                log.error("%s", self._problem)
                return

    def _restart(self, attempt: int) -> None:
        delay = min(self.first_delay_s * 2 ** (attempt - 1), MAX_DELAY_S)
        if self._stopping.wait(delay):
            return
        self._launch()
        if self._wait_healthy() is not None:
            return  # it exited again, or never answered and was stopped: the next look counts another exit
        try:
            if self.on_restart is not None:
                self.on_restart()
        except Exception:  # it runs without what on_restart restores: stopped, so that the next look retries
            log.exception("%s restarted, but restoring its state failed; stopping it to try again", self.name)
            self._kill()
            return
        self.restarts += 1
        self._problem = None
        log.warning("%s restarted (pid %s)", self.name, self._child.pid)

    # -- the child process ----------------------------------------------------------------------------------

    def _launch(self) -> None:
        log.info("starting %s: %s", self.name, " ".join(self.command))
        self._child = subprocess.Popen(self.command, env=self.env)

    def _wait_healthy(self) -> str | None:
        """None once `/health` answers 200, else why not: the child exited, did not answer in time (then it
        is stopped, so the watcher sees it exit) or stop() was called."""
        import httpx

        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            code = self._child.poll()
            if code is not None:
                return f"{self.name} exited with code {code} while starting (its log is above)"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            if self._stopping.wait(min(1.0, self.first_delay_s)):
                return "stopped"
        self._kill()
        return f"{self.name} did not become healthy within {self.start_timeout_s:.0f} s"

    def _kill(self) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
