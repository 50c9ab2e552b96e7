"""From a validated request to an engine request: messages, model routing, the prompt's token ids and
sampling settings, with every limit checked before anything reaches the engine.

`prepare_job` is CPU work (tokenising and guarding a prompt of up to `serve.max_request_bytes`), so the
app runs it in a worker thread: three clients sending 950 KB prompts must not stall `/health`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from r1tune.data.records import Message
from r1tune.serve.engine import EngineRequest
from r1tune.serve.guards import GuardReport
from r1tune.serve.protocol import ApiError, ChatCompletionRequest, FunctionSpec, NamedToolChoice, now
from r1tune.serve.runtime import ServeRuntime
from r1tune.serve.sampling import SamplingParams
from r1tune.serve.tools import conversation, offered_functions


@dataclass
class Job:
    """One chat completion on its way through the server: the engine request, the queue its events arrive
    on, and everything the response needs."""

    id: str
    created: int
    model_id: str
    adapter: str | None
    adapter_version: str | None  # set when the request is queued on the weights that answer it
    messages: list[Message]
    route: dict | None
    engine_request: EngineRequest
    queue: asyncio.Queue
    started: float
    report: GuardReport = field(default_factory=GuardReport)
    first_text_at: float | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning: str = ""
    content: str = ""
    failure: str = ""
    counted: bool = False  # in r1tune_requests_total already
    functions: list[FunctionSpec] = field(default_factory=list)  # the tools the model may call
    logprobs: list[dict] = field(default_factory=list)  # OpenAI entries of the answer's tokens
    _unsent: list[dict] = field(default_factory=list)  # entries not yet sent in a stream chunk

    @property
    def top_logprobs(self) -> int | None:
        """Alternatives per token the request asked for; None when it asked for no logprobs."""
        return self.engine_request.params.logprobs

    def add_logprobs(self, entries: list[dict]) -> None:
        self.logprobs += entries
        self._unsent += entries

    def take_unsent_logprobs(self) -> list[dict] | None:
        """The entries for the next stream chunk (None when logprobs were not asked for)."""
        if self.top_logprobs is None:
            return None
        out, self._unsent = self._unsent, []
        return out

    @property
    def reports_logprobs(self) -> bool:
        return self.top_logprobs is not None and self.finish_reason != "content_filter"


def prepare_job(runtime: ServeRuntime, body: ChatCompletionRequest, loop: asyncio.AbstractEventLoop) -> Job:
    """Everything the engine needs, or an ApiError; `loop` receives the engine's events."""
    functions = offered_functions(body, runtime.loaded.renderer.fmt.name)  # type: ignore[attr-defined]
    messages = to_messages(body, functions)
    refuse_overlong_text(runtime, messages)
    blocked = runtime.guards.blocked_input([m.content for m in messages])
    if blocked is not None:
        runtime.metrics.guard_events.labels("input_blocked").inc()
        raise ApiError(400, "the request was refused by the input filter", param="messages", code="content_filter")
    adapter, model_id, route = resolve_model(runtime, body.model, messages)
    prompt = runtime.loaded.renderer.render_prompt(messages)  # type: ignore[attr-defined]
    params = sampling_params(runtime, body, len(prompt), functions)
    queue: asyncio.Queue = asyncio.Queue()

    def emit(event: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    # The adapter's weights (a canary's or the live ones) are picked as the request is queued.
    engine_request = EngineRequest(prompt, params, emit, deadline=time.monotonic() + runtime.serve.request_timeout_s)
    return Job(id=f"chatcmpl-{uuid.uuid4().hex}", created=now(), model_id=model_id, adapter=adapter,
               adapter_version=None, messages=messages, route=route,
               engine_request=engine_request, queue=queue, started=time.perf_counter(), prompt_tokens=len(prompt),
               functions=functions)


def refuse_overlong_text(runtime: ServeRuntime, messages: list[Message]) -> None:
    """Refuse a prompt whose text cannot fit in `serve.max_prompt_tokens` before tokenising it: no token
    covers more characters than the vocabulary's longest entry, so longer text needs more tokens. Why:
    tokenising a 950 KB prompt takes 0.7-0.9 s of CPU (SmolLM2's tokenizer, this machine) only to refuse it."""
    chars = sum(len(m.content) for m in messages)
    most = runtime.serve.max_prompt_tokens * runtime.max_token_chars
    if chars > most:
        raise ApiError(400, f"the messages hold {chars} characters, more than {runtime.serve.max_prompt_tokens} "
                       "tokens (this server's limit) can encode", param="messages", code="context_length_exceeded")


def sampling_params(runtime: ServeRuntime, body: ChatCompletionRequest, prompt_tokens: int,
                    functions: Sequence[FunctionSpec] = ()) -> SamplingParams:
    """The request's decoding settings, with the server's length limits and the model's defaults applied."""
    serve = runtime.serve
    max_tokens = body.max_completion_tokens or body.max_tokens or serve.default_max_tokens
    if max_tokens > serve.max_tokens_limit:
        raise ApiError(400, f"max_tokens {max_tokens} is above this server's limit of {serve.max_tokens_limit}",
                       param="max_tokens", code="max_tokens_too_large")
    if prompt_tokens > serve.max_prompt_tokens:
        raise ApiError(400, f"the prompt has {prompt_tokens} tokens; this server accepts at most "
                       f"{serve.max_prompt_tokens}", param="messages", code="context_length_exceeded")
    if runtime.max_context is not None and prompt_tokens + max_tokens > runtime.max_context:
        raise ApiError(400, f"prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the model's "
                       f"context of {runtime.max_context} tokens", param="max_tokens",
                       code="context_length_exceeded")
    defaults = runtime.loaded.sampling  # type: ignore[attr-defined]
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=defaults["temperature"] if body.temperature is None else body.temperature,
        top_p=defaults["top_p"] if body.top_p is None else body.top_p,
        stop=body.stop_list,
        seed=body.seed,
        frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty,
        logit_bias=logit_bias(runtime, body.logit_bias),
        grammar=output_grammar(runtime, body, functions),
        logprobs=logprobs_setting(runtime, body),
    )


def logprobs_setting(runtime: ServeRuntime, body: ChatCompletionRequest) -> int | None:
    """How many alternatives to report per token (0: only the token's own), or None for no logprobs.
    Refused while answers are PII-masked: the tokens' texts would show what the mask hides."""
    if not body.logprobs:
        return None
    if not getattr(runtime.engine, "local", True):
        raise ApiError(400, f"logprobs are not available with serve.engine: {runtime.engine.name}",
                       param="logprobs", code="unsupported_parameter")
    if runtime.guards.scrubs:
        raise ApiError(400, "logprobs are not available while this server masks personal data in answers "
                       "(serve.guards.scrub_pii): token texts would reveal what the mask hides",
                       param="logprobs", code="unsupported_parameter")
    return body.top_logprobs or 0


def output_grammar(runtime: ServeRuntime, body: ChatCompletionRequest, functions: Sequence[FunctionSpec]) -> Any:
    """The grammar decoding must follow: a forced tool call, a JSON response format, or None."""
    wants_json = body.response_format is not None and body.response_format.type != "text"
    forced = functions and (body.tool_choice == "required" or isinstance(body.tool_choice, NamedToolChoice))
    if forced and wants_json:
        raise ApiError(400, "a forced tool call (tool_choice required or named) and a JSON response_format "
                       "cannot both shape one answer", param="tool_choice", code="invalid_value")
    if (forced or wants_json) and not getattr(runtime.engine, "local", True):
        raise ApiError(400, f"grammar-constrained output (a JSON response_format or a forced tool call) is not "
                       f"available with serve.engine: {runtime.engine.name}", param="response_format",
                       code="unsupported_parameter")
    if forced:
        return runtime.structured.compile_tool_call(list(functions))
    return runtime.structured.compile(body.response_format) if wants_json else None


def logit_bias(runtime: ServeRuntime, bias: dict[str, float]) -> tuple[tuple[int, float], ...]:
    vocab = len(runtime.loaded.tokenizer)  # type: ignore[attr-defined]
    out = []
    for token, value in bias.items():
        if int(token) >= vocab:
            raise ApiError(400, f"logit_bias names token {token}, but the vocabulary has {vocab} tokens",
                           param=f"logit_bias.{token}", code="invalid_value")
        out.append((int(token), float(value)))
    return tuple(out)


def to_messages(body: ChatCompletionRequest, functions: list[FunctionSpec]) -> list[Message]:
    messages = conversation(body, functions)
    if not any(m.role == "user" for m in messages):
        raise ApiError(400, "messages must contain at least one user message", param="messages",
                       code="invalid_value")
    if messages[-1].role != "user":
        raise ApiError(400, f"the last message must be from the user, got role {messages[-1].role!r}",
                       param=f"messages.{len(messages) - 1}.role", code="invalid_value")
    if not messages[-1].content.strip():
        raise ApiError(400, "the last user message is empty", param=f"messages.{len(messages) - 1}.content",
                       code="invalid_value")
    return messages


def resolve_model(runtime: ServeRuntime, model: str, messages: list[Message]) -> tuple[str | None, str, dict | None]:
    """(adapter or None for the base model, the model id to report, the routing decision for `auto`)."""
    if model == "auto" and runtime.router.available:
        route = runtime.router.route(messages[-1].content)
        if route.adapter is None and not runtime.serve.serve_base:
            raise ApiError(404, "no adapter matches this request and the base model is not served",
                           param="model", code="model_not_found")
        chosen = route.adapter or runtime.base_id
        return route.adapter, chosen, {"chosen": chosen, "scores": route.scores}
    if model == runtime.base_id and runtime.serve.serve_base:
        return None, model, None
    if runtime.registry.get(model) is not None:
        return model, model, None
    raise ApiError(404, f"the model {model!r} does not exist; available: {', '.join(runtime.model_ids())}",
                   param="model", code="model_not_found")
