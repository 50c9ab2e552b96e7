"""API keys, rate limits and the request size limit.

Keys are random 256-bit tokens, so they are stored as plain SHA-256 digests: a slow password hash protects
guessable secrets, and nothing about a random 256-bit token is guessable. A presented key is hashed and
compared against every stored digest with `hmac.compare_digest`, without stopping at the first match, so
the time taken does not reveal which (or whether a) key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from starlette.exceptions import HTTPException as StarletteHTTPException

from r1tune.errors import ConfigError
from r1tune.serve.protocol import error_body

Role = Literal["user", "admin"]
KEY_PREFIX = "r1t-"
MIN_KEY_LENGTH = 32  # plain keys from the environment; generated keys have 47 characters
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: Role
    digest: bytes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The accepted keys; empty means authentication is off (allowed on loopback only, see runtime)."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    @classmethod
    def load(cls, keys_file: Path | None, env_var: str | None, allow_weak: bool = False) -> ApiKeys:
        keys = read_keys_file(keys_file) if keys_file is not None else []
        raw = os.environ.get(env_var, "") if env_var else ""
        for i, key in enumerate(k.strip() for k in raw.split(",")):
            if not key:
                continue
            if len(key) < MIN_KEY_LENGTH and not allow_weak:
                raise ConfigError(
                    f"{env_var}: key #{i + 1} has {len(key)} characters; at least {MIN_KEY_LENGTH} are required",
                    hint="use a random key (`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, or "
                    "`r1tune serve CONFIG --new-api-key NAME` for a keys file), or set serve.allow_weak_keys: true",
                )
            keys.append(ApiKey(f"{env_var}[{i}]", "user", bytes.fromhex(hash_key(key))))
        return cls(keys)

    def authenticate(self, presented: str | None) -> ApiKey | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key
        return found


def read_keys_file(path: Path) -> list[ApiKey]:
    """Parse `name role sha256:<hex>` lines (`#` starts a comment); errors name the file and line."""
    if not path.is_file():
        raise ConfigError(f"API keys file {path} does not exist",
                          hint="create it with `r1tune serve CONFIG --new-api-key NAME`")
    keys: list[ApiKey] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{path}:{lineno}"
        if len(parts) != 3 or not parts[2].startswith("sha256:"):
            raise ConfigError(f"{where}: expected `name role sha256:<hex>`, got {line!r}")
        name, role, digest = parts[0], parts[1], parts[2][len("sha256:"):]
        if role not in ("user", "admin"):
            raise ConfigError(f"{where}: role must be user or admin, got {role!r}")
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"{where}: the digest must be 64 hex digits (sha256)")
        keys.append(ApiKey(name, role, raw))  # type: ignore[arg-type]
    return keys


def add_key(path: Path, name: str, role: Role = "user") -> str:
    """Create a new random key, append its digest to `path` and return the key (shown once, never stored)."""
    if not name or any(c.isspace() or c == "#" for c in name):
        raise ConfigError(f"invalid key name {name!r}: no spaces or '#'")
    existing = read_keys_file(path) if path.is_file() else []
    if any(k.name == name for k in existing):
        raise ConfigError(f"{path} already has a key named {name!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{name} {role} sha256:{hash_key(key)}\n")
    os.chmod(path, 0o600)
    return key


class RateLimiter:
    """A token bucket per identity: `per_minute` requests per minute on average, bursts up to that many."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def peek(self, identity: str) -> float | None:
        """Like `check`, but counts nothing: None while a request would be allowed."""
        if self.capacity <= 0:
            return None
        with self._lock:
            tokens, last = self._buckets.get(identity, (self.capacity, time.monotonic()))
        tokens = min(self.capacity, tokens + (time.monotonic() - last) * self.rate)
        return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def check(self, identity: str) -> float | None:
        """None if allowed (and counted); otherwise the seconds until a request would be allowed."""
        if self.capacity <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 10_000:  # forget identities whose bucket has refilled anyway
                full_after = self.capacity / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
            tokens, last = self._buckets.get(identity, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[identity] = (tokens - 1.0, now)
                return None
            self._buckets[identity] = (tokens, now)
            return (1.0 - tokens) / self.rate


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body is known to be too large; an HTTP exception so that FastAPI's body
    parsing passes it on to the error handlers (which answer 413) instead of turning it into a 400."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


class BodySizeLimit:
    """ASGI middleware refusing request bodies above `max_bytes` before anything parses them.

    Starlette has a body limit of its own, but it answers in plain text, and OpenAI clients expect the
    JSON error object; this one leaves the answer to the app's error handlers. A declared Content-Length is
    checked up front; a chunked body is counted as it arrives.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            scope["r1tune.body_too_large"] = True
        received = 0

        async def counted_receive() -> dict:
            nonlocal received
            if scope.get("r1tune.body_too_large"):
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        await self.app(scope, counted_receive, send)


class UnexpectedErrors:
    """ASGI middleware answering any exception that escaped the app with OpenAI's error object and a 500.

    Why not `app.exception_handler(Exception)`: Starlette hands that one to its outermost middleware, which
    re-raises after answering, and uvicorn then closes the connection: the next request a client sent on the
    same kept-alive connection was reset. Here the exception stops, so the connection stays usable."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as err:
            log.exception("unexpected error")
            if started:  # half a response is out: only closing the connection can tell the client
                raise
            body = json.dumps(error_body(f"internal error: {type(err).__name__}", "server_error",
                                         code="internal_error")).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
