"""The engine of a gateway: the same interface as the builtin `Engine`, generating through an upstream
OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, TGI, or another r1tune) instead of a local model.

Each request goes to the upstream's `/v1/completions` with r1tune's own rendering of the conversation as
token ids (never the upstream's chat template), streamed back as text deltas; the adapter name is the
upstream model name (vLLM serves each LoRA adapter under its own name). r1tune keeps everything in front:
keys, rate limits, guards, PII scrub, the store, routing and metrics. A slow or failing upstream affects
only the requests it is answering: each runs in its own worker, with the request's deadline as timeout,
and a client's cancellation closes that request's upstream stream. Upstream error details go to the log,
never to another client; the client whose request the upstream refused (4xx) gets the upstream's reason.
An upstream that cannot be reached, drops the stream or is overloaded ends the request as `unavailable`
(503 with Retry-After), and `/health` answers 503 while it does not answer or the vLLM child is down (it is
started again: serve/supervised.py), so a load balancer or Kubernetes stops sending traffic here.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from r1tune.errors import R1TuneError
from r1tune.serve.engine import INTERNAL_ERROR, EngineBusy, EngineRequest, Finished, TextDelta

log = logging.getLogger(__name__)
_FINISH = {"stop": "stop", "length": "length", "eos": "stop", "abort": "cancelled"}
UNAVAILABLE = "the model server behind this gateway cannot be reached or is overloaded; retry later"
OVERLOADED_STATUSES = {429, 502, 503, 504}  # the upstream's way of saying "not now"
HEALTH_PROBE_S = 5.0  # /health asks the upstream for its models at most this often


class UpstreamEngine:
    """`max_concurrent` requests in flight to the upstream at once, `max_waiting` more queued."""

    local = False  # no model in this process: no grammar-constrained decoding or logprobs here

    def __init__(self, base_url: str, base_model: str, stop_token_ids: list[int], api_key_env: str | None = None,
                 max_concurrent: int = 16, max_waiting: int = 256, name: str = "openai", send_stop_ids: bool = False,
                 loads_adapters: bool = False) -> None:
        """`loads_adapters`: the upstream is vLLM started by r1tune with run-time LoRA loading, so an adapter
        it does not list yet is loaded into it (`/v1/load_lora_adapter`); otherwise it must already be there."""
        self.name = name  # what serve.engine resolved to: openai, or vllm (the child r1tune started)
        self.base_url = base_url.rstrip("/")
        self.base_model = base_model
        self.stop_token_ids = list(stop_token_ids)
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.max_concurrent, self.max_waiting = max_concurrent, max_waiting
        self.send_stop_ids = send_stop_ids  # vLLM's `stop_token_ids` extension; others may refuse unknown fields
        self.loads_adapters = loads_adapters
        self.on_stop: Any = None  # e.g. stopping the vLLM child process r1tune started
        # the vLLM child's supervisor's `problem` (why it is down, else None); no child, no problem
        self.child_problem: Callable[[], str | None] = lambda: None
        self._health: tuple[float, str | None] = (0.0, None)  # (when to ask again, the last answer)
        self.model = None
        self.uses_adapters = False
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running: set[int] = set()  # ids of the requests a worker is serving
        self._queued = 0
        self._holding: dict[int, str | None] = {}  # the adapter of every queued or running request
        self._adapters: dict[str, str] = {}
        self._adapter_dirs: dict[str, str] = {}  # what was loaded into the upstream at run time

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return self._queued

    def problem(self) -> str | None:
        """Why requests cannot be answered now (`/health` says so with a 503), or None."""
        down = self.child_problem()
        if down is not None:
            return down
        ask_at, answer = self._health
        if time.monotonic() >= ask_at:
            try:
                self.upstream_models(timeout=2)
                answer = None
            except R1TuneError as err:
                log.warning("health: %s", err)
                answer = "the model server behind this gateway does not answer"
            self._health = (time.monotonic() + HEALTH_PROBE_S, answer)
        return answer

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="r1tune-upstream")

    def stop(self, timeout: float = 10.0) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.on_stop is not None:
            self.on_stop()
            self.on_stop = None

    def submit(self, request: EngineRequest) -> None:
        with self._lock:
            if self._pool is None:
                raise EngineBusy("the server is shutting down")
            if self._queued >= self.max_waiting:
                raise EngineBusy(f"{self._queued} requests are already waiting")
            self._queued += 1
            self._holding[request.id] = request.adapter
        self._pool.submit(self._serve, request)

    def call(self, fn: Any) -> Future:
        """Run `fn` now (there is no engine thread to hand it to); a Future for the registry's sake."""
        done: Future = Future()
        try:
            done.set_result(fn())
        except Exception as err:
            done.set_exception(err)
        return done

    def adapters_in_use(self) -> set[str]:
        """Adapters of queued or running requests (a queued one waits for a worker in neither count)."""
        with self._lock:
            return {a for a in self._holding.values() if a}

    def attach_adapter(self, name: str, adapter_dir: Any) -> None:
        """The adapter must be served upstream under `name` (vLLM: `--lora-modules name=path`, or loaded at
        run time); a name the upstream does not list is refused here, not at the first request."""
        listed = name in self.upstream_models()
        if not listed and self.loads_adapters:
            self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(adapter_dir)})
            self._adapter_dirs[name] = str(adapter_dir)
        elif not listed:
            raise R1TuneError(f"the upstream at {self.base_url} serves no model named {name!r}",
                              hint=f"start it with the adapter loaded under that name (vLLM: --lora-modules {name}=PATH)")
        self._adapters[name] = name

    def detach_adapter(self, name: str) -> None:
        if self.loads_adapters:
            self._post("unload_lora_adapter", {"lora_name": name})
        self._adapters.pop(name, None)
        self._adapter_dirs.pop(name, None)

    def reload_adapters(self) -> None:
        """Load every run-time adapter again, into an upstream that was restarted without them."""
        for name, adapter_dir in dict(self._adapter_dirs).items():
            self._post("load_lora_adapter", {"lora_name": name, "lora_path": adapter_dir})

    def _post(self, endpoint: str, body: dict[str, Any]) -> None:
        import httpx

        reply = httpx.post(f"{self.base_url}/{endpoint}", json=body, headers=self._headers(), timeout=300)
        if reply.status_code != 200:
            raise R1TuneError(f"the upstream refused {endpoint} ({reply.status_code}): {reply.text[:300]}")

    def upstream_models(self, timeout: float = 10) -> list[str]:
        return list(self.upstream_contexts(timeout))

    def upstream_contexts(self, timeout: float = 10) -> dict[str, int | None]:
        """Every model the upstream lists, with the context length it reports (vLLM's `max_model_len`, the
        window it actually allocated), or None where it reports none (servers that do not say)."""
        import httpx

        try:
            reply = httpx.get(f"{self.base_url}/models", headers=self._headers(), timeout=timeout)
            reply.raise_for_status()
            return {m["id"]: _context_length(m.get("max_model_len")) for m in reply.json().get("data", [])}
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as err:  # not OpenAI-shaped too
            raise R1TuneError(f"cannot list the upstream's models at {self.base_url}/models: {err}",
                              hint="check serve.upstream_url and that the upstream server is running") from None

    # -- one request, on a worker ---------------------------------------------------------------------------

    def _serve(self, request: EngineRequest) -> None:
        import httpx

        with self._lock:
            self._queued -= 1
            self._running.add(request.id)
        try:
            if self.child_problem() is not None:
                # down, or up again without its adapters yet: a retry later gets the right model
                request.emit(_unavailable(request))
                return
            self._stream(request)
        except httpx.ReadTimeout:  # the request's own deadline is the read timeout
            request.emit(Finished("timeout", len(request.prompt_ids), 0))
        except httpx.TransportError as err:  # refused, unreachable, or the stream broke off
            log.error("upstream %s failed request %s: %r", self.base_url, request.id, err)
            request.emit(_unavailable(request))
        except Exception:
            log.exception("upstream request %s failed", request.id)
            request.emit(Finished("error", len(request.prompt_ids), 0, INTERNAL_ERROR))
        finally:
            with self._lock:
                self._running.discard(request.id)
                self._holding.pop(request.id, None)

    def _stream(self, request: EngineRequest) -> None:
        import httpx

        timeout = None if request.deadline is None else max(request.deadline - time.monotonic(), 0.1)
        generated, reason = 0, "length"
        with httpx.stream("POST", f"{self.base_url}/completions", json=self._body(request), headers=self._headers(),
                          timeout=httpx.Timeout(timeout, connect=10)) as reply:
            if reply.status_code != 200:
                request.emit(_refusal(request, reply.status_code, reply.read()))
                return
            usage: dict[str, Any] = {}
            for chunk in sse_payloads(reply.iter_lines()):
                if request.cancelled:
                    request.emit(Finished("cancelled", len(request.prompt_ids), generated))
                    return
                if request.deadline is not None and time.monotonic() > request.deadline:
                    request.emit(Finished("timeout", len(request.prompt_ids), generated))
                    return
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    if choice.get("text"):
                        generated += 1
                        request.emit(TextDelta(choice["text"]))
                    reason = _FINISH.get(choice.get("finish_reason") or "", reason)
        request.emit(Finished(reason, int(usage.get("prompt_tokens", len(request.prompt_ids))),
                              int(usage.get("completion_tokens", generated))))

    def _body(self, request: EngineRequest) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self._adapters.get(request.adapter or "", self.base_model), "prompt": request.prompt_ids,
            "max_tokens": p.max_tokens, "temperature": p.temperature, "top_p": p.top_p, "stream": True,
            "stream_options": {"include_usage": True}, "frequency_penalty": p.frequency_penalty,
            "presence_penalty": p.presence_penalty}
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        if p.logit_bias:
            body["logit_bias"] = {str(token): bias for token, bias in p.logit_bias}
        if self.send_stop_ids:
            body["stop_token_ids"] = self.stop_token_ids
        return body

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _refusal(request: EngineRequest, status: int, body: bytes) -> Finished:
    """How a request the upstream answered with an error status ends."""
    log.error("upstream answered %s to request %s: %s", status, request.id, body[:500])
    if status in OVERLOADED_STATUSES:
        return _unavailable(request)
    if 400 <= status < 500:
        return Finished("error", len(request.prompt_ids), 0,
                        f"the model server behind this gateway refused the request ({status}): {_reason(body)}")
    return Finished("error", len(request.prompt_ids), 0, INTERNAL_ERROR)


def _unavailable(request: EngineRequest) -> Finished:
    """The end of a request the upstream cannot answer now: a 503 to retry (protocol.failure_error)."""
    return Finished("unavailable", len(request.prompt_ids), 0, UNAVAILABLE)


def _reason(body: bytes) -> str:
    """The upstream's own error message (OpenAI's {"error": {"message"}} or a plain text), shortened."""
    try:
        payload = json.loads(body)
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        text = error.get("message", error) if isinstance(error, dict) else error
    except ValueError:
        text = body.decode("utf-8", "replace")
    return str(text).strip()[:300] or "no reason given"


def sse_payloads(lines: Any) -> Any:
    """The JSON payloads of a server-sent-event stream, up to `[DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)


def _context_length(value: Any) -> int | None:
    """A reported context length when it is a positive whole number, else None (unknown)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
