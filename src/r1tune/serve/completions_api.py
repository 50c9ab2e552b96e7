"""`POST /v1/completions` with token-id prompts: how another r1tune (a gateway, `serve.engine: openai`)
or any OpenAI client with an admin key drives this server's engine directly. Raw prompts skip the chat
rendering, guards, PII scrub and the completion store (they are the caller's job, as a gateway does them),
which is why the endpoint needs an admin key when keys are on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from r1tune.serve.adapters import AdapterError
from r1tune.serve.engine import EngineBusy, EngineRequest, Finished, TextDelta
from r1tune.serve.protocol import (
    ApiError,
    CompletionRequest,
    busy_error,
    failure_error,
    now,
)
from r1tune.serve.runtime import ServeRuntime
from r1tune.serve.sampling import SamplingParams

_REASONS = {"stop": "stop", "length": "length"}


async def raw_completion(runtime: ServeRuntime, body: CompletionRequest) -> Any:
    adapter = _adapter(runtime, body.model)
    prompt = _prompt_ids(runtime, body.prompt)
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    request = EngineRequest(prompt, _params(runtime, body, len(prompt)),
                            lambda event: loop.call_soon_threadsafe(queue.put_nowait, event),
                            deadline=_deadline(runtime))
    try:
        runtime.registry.submit(request, adapter, user=None)  # a canary takes its share at random
    except EngineBusy as err:
        raise busy_error(err) from None
    except AdapterError as err:  # unloaded since the request was validated
        raise ApiError(404, str(err), param="model", code="model_not_found") from None
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": now(), "model": body.model}
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_sse(queue, head, usage, request), media_type="text/event-stream")
    text, finished = "", None
    async for event in _drain(queue, request):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            finished = event
    assert finished is not None
    _raise_on_failure(finished)
    return JSONResponse({**head, "choices": [{"index": 0, "text": text, "finish_reason": _REASONS[finished.reason],
                                              "logprobs": None}], "usage": _usage(finished)})


def _deadline(runtime: ServeRuntime) -> float:
    import time

    return time.monotonic() + runtime.serve.request_timeout_s


def _adapter(runtime: ServeRuntime, model: str) -> str | None:
    if model == runtime.base_id and runtime.serve.serve_base:
        return None
    if runtime.registry.get(model) is None:
        raise ApiError(404, f"no model named {model!r} (see /v1/models)", param="model", code="model_not_found")
    return model


def _prompt_ids(runtime: ServeRuntime, prompt: list[int] | str) -> list[int]:
    tokenizer: Any = runtime.loaded.tokenizer  # type: ignore[attr-defined]
    ids = prompt if isinstance(prompt, list) else tokenizer(prompt, add_special_tokens=False)["input_ids"]
    vocab = len(tokenizer)
    if any(not 0 <= t < vocab for t in ids):
        raise ApiError(400, f"prompt token ids must lie in 0..{vocab - 1}", param="prompt", code="invalid_prompt")
    return list(ids)


def _params(runtime: ServeRuntime, body: CompletionRequest, prompt_tokens: int) -> SamplingParams:
    serve = runtime.serve
    if body.max_tokens > serve.max_tokens_limit or prompt_tokens > serve.max_prompt_tokens:
        raise ApiError(400, f"max_tokens ≤ {serve.max_tokens_limit} and prompts ≤ {serve.max_prompt_tokens} tokens "
                       "on this server", param="max_tokens", code="context_length_exceeded")
    defaults = runtime.loaded.sampling  # type: ignore[attr-defined]
    return SamplingParams(max_tokens=body.max_tokens,
                          temperature=defaults["temperature"] if body.temperature is None else body.temperature,
                          top_p=defaults["top_p"] if body.top_p is None else body.top_p, stop=body.stop_list,
                          seed=body.seed, frequency_penalty=body.frequency_penalty,
                          presence_penalty=body.presence_penalty)


async def _drain(queue: asyncio.Queue, request: EngineRequest) -> AsyncIterator[TextDelta | Finished]:
    try:
        while True:
            event = await queue.get()
            yield event
            if isinstance(event, Finished):
                return
    finally:
        request.cancel()  # a no-op when finished; stops generation when the client went away


async def _sse(queue: asyncio.Queue, head: dict, include_usage: bool, request: EngineRequest) -> AsyncIterator[str]:
    async for event in _drain(queue, request):
        if isinstance(event, TextDelta):
            yield _chunk({**head, "choices": [{"index": 0, "text": event.text, "finish_reason": None}]})
            continue
        if event.reason not in _REASONS:
            yield _chunk(failure_error(event.reason, event.message or f"generation ended: {event.reason}").body())
            break
        yield _chunk({**head, "choices": [{"index": 0, "text": "", "finish_reason": _REASONS[event.reason]}]})
        if include_usage:
            yield _chunk({**head, "choices": [], "usage": _usage(event)})
    yield "data: [DONE]\n\n"


def _chunk(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _usage(finished: Finished) -> dict[str, int]:
    return {"prompt_tokens": finished.prompt_tokens, "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens}


def _raise_on_failure(finished: Finished) -> None:
    if finished.reason in _REASONS:
        return
    raise failure_error(finished.reason, finished.message or f"generation ended: {finished.reason}")
