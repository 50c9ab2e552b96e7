"""The OpenAI wire format: request bodies (validated by pydantic), response chunks and error objects.

Unknown request fields are ignored, as OpenAI-compatible servers do (clients send what the official API
accepts); known fields with wrong types or values are refused with 400 naming the field. Assistant turns
may carry `reasoning_content` (DeepSeek) or `reasoning` (vLLM): they are accepted and not fed back to the
model, because R1 is trained without earlier turns' reasoning in its context.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ApiError(Exception):
    """An error answered in OpenAI's `{"error": {...}}` shape with an HTTP status."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | int | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    user: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class FeedbackRequest(_Lenient):
    completion_id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down", 1, 2, 3, 4, 5] | None = None
    corrected_answer: str | None = Field(None, max_length=100_000)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        if any(len(t) > 64 for t in value):
            raise ValueError("each tag has at most 64 characters")
        return value


class LoadAdapterRequest(_Lenient):
    lora_name: str
    lora_path: str
    router_data: str | None = None


class UnloadAdapterRequest(_Lenient):
    lora_name: str


def chunk(completion_id: str, created: int, model: str, delta: dict[str, Any] | None,
          finish_reason: str | None = None, usage: dict | None = None, extra: dict | None = None) -> dict:
    """One `chat.completion.chunk`; `delta=None` makes the usage-only chunk with `choices: []`."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason}]
    out = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": choices, "usage": usage}
    if extra:
        out.update(extra)
    return out


def now() -> int:
    return int(time.time())
