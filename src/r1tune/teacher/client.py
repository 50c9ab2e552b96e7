"""The teacher client: chat completions from any OpenAI-compatible endpoint, for jobs that ask thousands of
questions (reasoning traces, synthetic data, distillation) and must survive rate limits, crashes and
budgets without paying twice.

- Concurrency: `max_concurrency` requests in flight.
- Retries: 429, 5xx, timeouts and lost connections are retried with exponential backoff (0.5 s doubling,
  at most 30 s, or the server's Retry-After); 401/403 stop the job at once (a wrong key is not transient).
- Cache: every answer is stored on disk under a key of (endpoint, model, messages, settings) before it is
  returned, so an interrupted job re-run asks only what it had not asked yet.
- Budget: `max_requests` network requests per job; at the budget the job stops (`TeacherBudgetExhausted`)
  with every answer so far cached.
- Ledger: prompt and completion tokens and their cost, per job, for the run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1tune.config.teacher import TeacherConfig
from r1tune.errors import R1TuneError

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}


class TeacherError(R1TuneError):
    """The teacher cannot be used (unreachable, wrong key, malformed answers)."""


class TeacherBudgetExhausted(TeacherError):
    """`teacher.max_requests` is spent; everything answered so far is cached."""


@dataclass(frozen=True)
class TeacherReply:
    content: str
    reasoning: str | None  # `reasoning_content` when the endpoint separates it (DeepSeek's API, vLLM's parser)
    finish_reason: str
    cached: bool = False


@dataclass
class Ledger:
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class TeacherClient:
    def __init__(self, cfg: TeacherConfig, cache_dir: Path) -> None:
        if not cfg.base_url:
            raise TeacherError("no teacher is configured", hint="set teacher.base_url (and teacher.model)")
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.cache_dir = cache_dir
        self.api_key = os.environ.get(cfg.api_key_env, "")
        self.ledger = Ledger()
        self._budget_left = cfg.max_requests

    def ask_many(self, conversations: list[list[dict[str, str]]], n: int = 1) -> list[list[TeacherReply]]:
        """`n` replies per conversation, in order. Raises TeacherBudgetExhausted or TeacherError after the
        requests already in flight have finished (and been cached)."""
        with ThreadPoolExecutor(self.cfg.max_concurrency) as pool:
            futures = [pool.submit(self.ask, messages, n) for messages in conversations]
            return [f.result() for f in futures]

    def ask(self, messages: list[dict[str, str]], n: int = 1) -> list[TeacherReply]:
        body = {"model": self.cfg.model, "messages": messages, "n": n, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens}
        key = hashlib.sha256(json.dumps([self.url, body], sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        cached = self._read_cache(key)
        if cached is not None:
            with self.ledger._lock:
                self.ledger.cache_hits += 1
            return [TeacherReply(**r, cached=True) for r in cached]
        self._spend_one()
        replies = self._post_with_retries(body)
        self._write_cache(key, replies)
        return replies

    # -- budget, cache --------------------------------------------------------------------------------------

    def _spend_one(self) -> None:
        with self.ledger._lock:
            if self._budget_left is not None:
                if self._budget_left <= 0:
                    raise TeacherBudgetExhausted(
                        f"the teacher budget of {self.cfg.max_requests} requests is spent",
                        hint="raise teacher.max_requests and re-run: answers so far are cached and not asked again")
                self._budget_left -= 1
            self.ledger.requests += 1

    def _cache_file(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> list[dict[str, Any]] | None:
        path = self._cache_file(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write_cache(self, key: str, replies: list[TeacherReply]) -> None:
        path = self._cache_file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        rows = [{"content": r.content, "reasoning": r.reasoning, "finish_reason": r.finish_reason} for r in replies]
        tmp.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash never leaves half a cached answer

    # -- the network ----------------------------------------------------------------------------------------

    def _post_with_retries(self, body: dict[str, Any]) -> list[TeacherReply]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        for attempt in range(self.cfg.max_retries + 1):
            wait = min(30.0, 0.5 * 2**attempt)
            try:
                reply = httpx.post(self.url, json=body, headers=headers, timeout=self.cfg.timeout_s)
            except httpx.TransportError as err:  # refused, reset, timed out
                problem = f"{type(err).__name__}: {err}"
            else:
                if reply.status_code == 200:
                    return self._parse(reply)
                if reply.status_code in (401, 403):
                    raise TeacherError(f"the teacher at {self.url} refused the API key (HTTP {reply.status_code})",
                                       hint=f"put a valid key in ${self.cfg.api_key_env}")
                if reply.status_code not in RETRY_STATUSES:
                    raise TeacherError(f"the teacher at {self.url} answered HTTP {reply.status_code}: "
                                       f"{reply.text[:300]}")
                problem = f"HTTP {reply.status_code}"
                wait = _retry_after(reply) or wait
            if attempt < self.cfg.max_retries:
                with self.ledger._lock:
                    self.ledger.retries += 1
                time.sleep(wait)
        raise TeacherError(f"the teacher at {self.url} failed {self.cfg.max_retries + 1} times (last: {problem})",
                           hint="check teacher.base_url and that the endpoint is up; re-running continues")

    def _parse(self, reply: Any) -> list[TeacherReply]:
        try:
            data = reply.json()
            replies = [TeacherReply(content=c["message"].get("content") or "",
                                    reasoning=c["message"].get("reasoning_content") or c["message"].get("reasoning"),
                                    finish_reason=c.get("finish_reason") or "stop") for c in data["choices"]]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise TeacherError(f"the teacher at {self.url} sent an answer that is not a chat completion: {err}") from None
        usage = data.get("usage") or {}
        with self.ledger._lock:
            self.ledger.prompt_tokens += int(usage.get("prompt_tokens", 0))
            self.ledger.completion_tokens += int(usage.get("completion_tokens", 0))
            self.ledger.cost = (self.ledger.prompt_tokens * self.cfg.price_per_million_prompt_tokens
                                + self.ledger.completion_tokens * self.cfg.price_per_million_completion_tokens) / 1e6
        return replies


def _retry_after(reply: Any) -> float | None:
    try:
        return min(60.0, float(reply.headers.get("retry-after", "")))
    except ValueError:
        return None
