"""The OpenAI wire format: request bodies (validated by pydantic), response chunks and error objects.

Nothing a client asks for is silently ignored: types are strict, unknown fields are refused with 400
`unknown_parameter`, and OpenAI parameters r1tune does not implement are refused with 400
`unsupported_parameter` unless their value asks for nothing (`logprobs: false`, `tools: []`). Assistant turns
may carry `reasoning_content` (DeepSeek) or `reasoning` (vLLM): they are accepted and not fed back to the
model, because R1 is trained without earlier turns' reasoning in its context.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


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


BodyModel = TypeVar("BodyModel", bound=BaseModel)


# A request that ended without an answer, by its finish reason: (HTTP status, the error's `code`).
FAILED = {"timeout": (504, "timeout"), "error": (500, "generation_failed"), "cancelled": (499, "client_closed"),
          "unavailable": (503, "upstream_unavailable")}
RETRY_AFTER_S = "5"  # what a 503 asks a client to wait


def failure_error(reason: str, message: str) -> ApiError:
    """The error a request that ended with `reason` (a key of FAILED) is answered with."""
    status, code = FAILED[reason]
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    return ApiError(status, message, "server_error", code=code, headers=headers)


def busy_error(reason: object) -> ApiError:
    """The 503 for a request the engine's full queue refused."""
    return ApiError(503, f"the server is busy ({reason}); retry later", "server_error", code="overloaded",
                    headers={"Retry-After": RETRY_AFTER_S})


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | int | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# OpenAI chat parameters r1tune does not implement, each with the values that ask for nothing (and so are
# accepted). Any other value is refused with 400 `unsupported_parameter` naming the parameter: a client that
# asks for JSON output or tool calls must learn it did not get them, not receive free text with a 200.
UNSUPPORTED_PARAMETERS: dict[str, tuple[Any, ...]] = {
    "functions": ([],),  # the deprecated form of `tools`
    "function_call": ("none",),
    "reasoning_effort": (),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "web_search_options": (),
    "store": (False,),
    "metadata": ({},),
    "service_tier": ("auto", "default"),
    "verbosity": (),
    "prompt_cache_key": (),
    "safety_identifier": (),
}
# Fields an assistant message echoed back by OpenAI's SDK carries; accepted while they hold nothing.
_ECHOED_MESSAGE_FIELDS = ("refusal", "annotations", "audio", "function_call", "tool_calls")
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for function names
NUL = "\x00"


class _Strict(BaseModel):
    """Wire types are strict (no `"2"` for 2, no `"yes"` for true) and unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCallIn(_Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    arguments: str  # a JSON object, as a string (OpenAI's wire format)


class ToolCallIn(_Strict):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    name: str | None = Field(None, max_length=256)
    tool_calls: list[ToolCallIn] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = Field(None, max_length=128)  # a tool turn: which call it answers

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> ChatMessageIn:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has one")
        return self

    @model_validator(mode="before")
    @classmethod
    def _drop_empty_echoed_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not (k in _ECHOED_MESSAGE_FIELDS and v in (None, []))}
        return value

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionSpec(_Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = Field(None, max_length=4096)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None  # with tool_choice required/named the arguments always follow `parameters`


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Strict):
    include_usage: bool = False


class JsonSchemaFormat(_Strict):
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None  # answers always follow the schema; accepted for OpenAI clients that send it


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_iff_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type json_schema, and only then")
        return self


class ChatCompletionRequest(_Strict):
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    # torch's generators take a signed or unsigned 64-bit seed; anything wider is refused here, not by torch
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] = Field(default_factory=dict, max_length=300)
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[ToolSpec] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
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

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatCompletionRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tools: function names must be unique")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise ValueError(f"tool_choice names {self.tool_choice.function.name!r}, which is not in tools")
        if self.tool_choice not in (None, "none") and not names:
            raise ValueError("tool_choice needs tools")
        return self

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _token_ids_and_bounded_biases(cls, value: dict[str, float]) -> dict[str, float]:
        for token, bias in value.items():
            if not token.isdigit():
                raise ValueError(f"keys are token ids written as strings, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"biases lie in [-100, 100], got {bias} for token {token}")
        return value

    @property
    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(_Strict):
    """`/v1/completions` with a prompt of token ids (or text): what a gateway in front of this server sends
    (admin keys only: raw prompts bypass the chat guards)."""

    model: str = Field(min_length=1, max_length=256)
    prompt: list[int] | str = Field(min_length=1)
    max_tokens: int = Field(16, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @property
    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


Rating = Literal["up", "down", 1, 2, 3, 4, 5]


class FeedbackRequest(_Strict):
    completion_id: str = Field(min_length=1, max_length=64)
    rating: Rating | None = Field(
        None, description="`up`/`down`, an integer 1-5, or a boolean (true → `up`, false → `down`); "
        "floats are refused, so 5.0 never passes for 5 nor true for 1.")
    corrected_answer: str | None = Field(None, max_length=100_000)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("rating", mode="before")
    @classmethod
    def _booleans_are_thumbs(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "up" if value else "down"
        if isinstance(value, float):  # a Literal of 5 accepts 5.0 even in strict mode
            raise ValueError(f"ratings are whole numbers 1-5, 'up' or 'down'; got the float {value}")
        return value

    @field_validator("tags")
    @classmethod
    def _short_tags(cls, value: list[str]) -> list[str]:
        if any(len(t) > 64 for t in value):
            raise ValueError("each tag has at most 64 characters")
        return value


class LoadAdapterRequest(_Strict):
    lora_name: str
    lora_path: str = Field(min_length=1, max_length=4096)
    router_data: str | None = Field(None, max_length=4096)


class CanaryRequest(_Strict):
    """Route `share` of the traffic for `lora_name` to the candidate weights at `lora_path` (0 ends it)."""

    lora_name: str
    lora_path: str | None = Field(None, min_length=1, max_length=4096)
    share: float = Field(ge=0.0, le=1.0)


class UnloadAdapterRequest(_Strict):
    lora_name: str


def parse_body(raw: bytes, model: type[BodyModel]) -> BodyModel:
    """Decode and validate a JSON request body; every problem is an `ApiError` 400 naming the parameter.

    Runs in a worker thread for large bodies: JSON decoding and validation of a 1 MB body is CPU work."""
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON object", code="missing_body")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON ({err})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(data).__name__}",
                       code="invalid_value")
    if model is ChatCompletionRequest:
        data = _without_neutral_unsupported(data)
    _refuse_nul(data, "")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise validation_error(err.errors()) from None


def _without_neutral_unsupported(data: dict[str, Any]) -> dict[str, Any]:
    for name, neutral in UNSUPPORTED_PARAMETERS.items():
        if name in data and data[name] is not None and not any(_same(data[name], n) for n in neutral):
            raise ApiError(400, f"the parameter {name!r} is not supported by this server",
                           param=name, code="unsupported_parameter")
    return {k: v for k, v in data.items() if k not in UNSUPPORTED_PARAMETERS}


def _same(value: Any, neutral: Any) -> bool:
    return type(value) is type(neutral) and value == neutral  # False is not 0 here


def _refuse_nul(value: Any, where: str) -> None:
    """NUL characters are refused everywhere: they truncate paths and C strings further down."""
    if isinstance(value, str) and NUL in value:
        raise ApiError(400, f"{where or 'the body'} contains a NUL character", param=where or None,
                       code="invalid_value")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _refuse_nul(item, f"{where}.{key}" if where else str(key))


def validation_error(errors: list[dict]) -> ApiError:
    """The first pydantic error as OpenAI's error object: the parameter's dotted path and what is wrong."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        return ApiError(400, f"unknown parameter {param!r}", param=param, code="unknown_parameter")
    detail = first.get("msg", "invalid value")
    message = f"{param} is required" if kind == "missing" else f"{param}: {detail}" if param else detail
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return ApiError(400, message, param=param, code="invalid_value")


def chunk(completion_id: str, created: int, model: str, delta: dict[str, Any] | None,
          finish_reason: str | None = None, usage: dict | None = None, extra: dict | None = None,
          logprobs: list[dict] | None = None) -> dict:
    """One `chat.completion.chunk`; `delta=None` makes the usage-only chunk with `choices: []`."""
    choices = [] if delta is None else [{"index": 0, "delta": delta,
                                         "logprobs": None if logprobs is None else {"content": logprobs},
                                         "finish_reason": finish_reason}]
    out = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": choices, "usage": usage}
    if extra:
        out.update(extra)
    return out


def now() -> int:
    return int(time.time())
