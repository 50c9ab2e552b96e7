"""The HTTP layer: an OpenAI-compatible FastAPI app over a `ServeRuntime`.

Endpoints: `POST /v1/chat/completions` (stream and non-stream), `GET /v1/models`, `POST /v1/feedback`,
`POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` (admin, vLLM's names), `/v1/swap_lora_adapter`
(admin: new weights for a served name without a restart), `GET /health`,
`GET /metrics`. Every error, including malformed JSON and wrong types, is answered with an OpenAI error
object and a 4xx status; nothing a client sends can crash the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from r1tune.models.decoding import ReasoningSplitter
from r1tune.serve.adapters import AdapterError
from r1tune.serve.engine import EngineBusy, Finished, TextDelta
from r1tune.serve.jobs import Job, prepare_job
from r1tune.serve.protocol import (
    FAILED,
    ApiError,
    BodyModel,
    CanaryRequest,
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackRequest,
    LoadAdapterRequest,
    UnloadAdapterRequest,
    busy_error,
    chunk,
    error_body,
    failure_error,
    now,
    parse_body,
    validation_error,
)
from r1tune.serve.runtime import ServeRuntime
from r1tune.serve.security import ApiKey, BodySizeLimit, UnexpectedErrors
from r1tune.serve.store import FeedbackRefused, UnknownCompletion
from r1tune.serve.tools import ToolCallStream, parse_tool_calls

log = logging.getLogger(__name__)

# How often a waiting handler checks whether its client is still connected.
_DISCONNECT_POLL_S = 0.25


@dataclass
class Caller:
    """Who is calling: the API key (None when keys are off) and the rate-limit identity."""

    key: ApiKey | None
    identity: str

    @property
    def name(self) -> str | None:
        return self.key.name if self.key else None


def _caller(request: Request) -> Caller:
    return _authenticate(request.app.state.runtime, request)


CallerDep = Annotated[Caller, Depends(_caller)]


def _admin(request: Request, who: CallerDep) -> Caller:
    runtime: ServeRuntime = request.app.state.runtime
    if not runtime.serve.allow_runtime_adapters:
        raise ApiError(403, "loading adapters at runtime is disabled (serve.allow_runtime_adapters)",
                       "permission_error", code="adapters_locked")
    if runtime.keys.enabled and (who.key is None or who.key.role != "admin"):
        raise ApiError(403, "this endpoint needs an admin API key", "permission_error", code="not_admin")
    return who


AdminDep = Annotated[Caller, Depends(_admin)]


def create_app(runtime: ServeRuntime) -> FastAPI:
    """The FastAPI app; its lifespan starts and stops the engine."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = FastAPI(title="r1tune", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=runtime.serve.max_request_bytes)
    if runtime.serve.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=runtime.serve.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(UnexpectedErrors)  # added last: outermost, so it also catches the others' errors
    app.state.runtime = runtime
    _install_error_handlers(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 while requests can be answered; 503 with the reason while they cannot (a gateway's upstream
        is down, the vLLM child exited), so that a load balancer or Kubernetes' probes stop sending here."""
        problem = await run_in_threadpool(runtime.engine.problem)  # a gateway may ask its upstream
        health = {"status": "unavailable" if problem else "ok", "running": runtime.engine.num_running,
                  "waiting": runtime.engine.num_waiting}
        if problem:
            health["reason"] = problem
        if not runtime.keys.enabled:  # without keys everything is open anyway; with keys, ask /v1/models
            health["models"] = runtime.model_ids()
        return JSONResponse(health, status_code=503 if problem else 200)

    @app.get("/metrics")
    async def metrics(_who: CallerDep) -> Response:
        body, content_type = runtime.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def list_models(_who: CallerDep) -> dict[str, Any]:
        return {"object": "list", "data": _model_cards(runtime)}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, who: CallerDep) -> Response:
        return await _complete(runtime, await _body(request, ChatCompletionRequest), request, who)

    @app.post("/v1/completions")
    async def completions(request: Request, _admin: AdminDep) -> Response:
        from r1tune.serve.completions_api import raw_completion

        return await raw_completion(runtime, await _body(request, CompletionRequest))

    @app.post("/v1/feedback")
    async def feedback(request: Request, who: CallerDep) -> dict[str, Any]:
        body = await _body(request, FeedbackRequest)
        store = runtime.store
        if store is None:
            raise ApiError(404, "completions are not logged on this server (serve.log_completions: false)",
                           code="feedback_disabled")
        if body.rating is None and body.corrected_answer is None:
            raise ApiError(400, "feedback needs a rating, a corrected_answer, or both", param="rating")

        def write() -> int:
            correction = runtime.guards.mask_for_storage(body.corrected_answer) if body.corrected_answer else None
            return store.add_feedback(body.completion_id, body.rating, correction, body.tags, who.name)

        try:
            feedback_id = await run_in_threadpool(write)
        except UnknownCompletion as err:
            raise ApiError(404, str(err), param="completion_id", code="completion_not_found") from None
        except FeedbackRefused as err:
            raise ApiError(400, str(err), param="corrected_answer") from None
        runtime.metrics.feedback.labels(str(body.rating)).inc()
        return {"id": feedback_id, "object": "feedback", "completion_id": body.completion_id, "stored": True}

    @app.post("/v1/load_lora_adapter")
    async def load_adapter(request: Request, _who: AdminDep) -> dict[str, Any]:
        body = await _body(request, LoadAdapterRequest)
        router_data = Path(body.router_data) if body.router_data else None
        info = await _adapter_change(runtime.load_adapter, body.lora_name, Path(body.lora_path), router_data)
        return {"status": "loaded", "model": info.name, "version": info.version}

    @app.post("/v1/swap_lora_adapter")
    async def swap_adapter(request: Request, _who: AdminDep) -> dict[str, Any]:
        """A promoted or rolled-back version takes over its name; running requests finish on the old weights."""
        body = await _body(request, LoadAdapterRequest)
        info = await _adapter_change(runtime.swap_adapter, body.lora_name, Path(body.lora_path))
        return {"status": "swapped", "model": info.name, "version": info.version}

    @app.post("/v1/canary")
    async def canary(request: Request, _who: AdminDep) -> dict[str, Any]:
        """Candidate weights for a share of an adapter's traffic, sticky per `user`; 0 ends the canary."""
        body = await _body(request, CanaryRequest)
        path = Path(body.lora_path) if body.lora_path else None
        info = await _adapter_change(runtime.set_canary, body.lora_name, path, body.share)
        return {"status": "canary" if info else "ended", "model": body.lora_name,
                "version": info.version if info else None, "share": body.share if info else 0.0}

    @app.post("/v1/unload_lora_adapter")
    async def unload_adapter(request: Request, _who: AdminDep) -> dict[str, Any]:
        body = await _body(request, UnloadAdapterRequest)
        info = await _adapter_change(runtime.unload_adapter, body.lora_name, param="lora_name")
        return {"status": "unloaded", "model": info.name, "version": info.version}

    return app


# -- errors -----------------------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        api = validation_error(list(err.errors()))
        return JSONResponse(api.body(), status_code=api.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(err.status_code)
        return JSONResponse(error_body(str(err.detail), code=code), status_code=err.status_code,
                            headers=getattr(err, "headers", None))


# Bodies above this are decoded and validated in a worker thread (CPU work that would stall the event loop).
_PARSE_INLINE_BYTES = 64 * 1024


async def _adapter_change(change: Any, *args: Any, param: str | None = None) -> Any:
    """Run an adapter change off the event loop; its refusal becomes the client's error (about `param`, or
    the field the refusal names)."""
    try:
        return await run_in_threadpool(change, *args)
    except AdapterError as err:
        raise ApiError(err.status, str(err), param=param or err.param, code="adapter_error") from None


async def _body(request: Request, model: type[BodyModel]) -> BodyModel:
    raw = await request.body()
    if len(raw) <= _PARSE_INLINE_BYTES:
        return parse_body(raw, model)
    return await run_in_threadpool(parse_body, raw, model)


def _authenticate(runtime: ServeRuntime, request: Request) -> Caller:
    key = None
    address = request.client.host if request.client else "?"
    if runtime.keys.enabled:
        locked = runtime.auth_failures.peek(address)
        if locked is not None:  # checked before the key, so guessing gets no answer at all while locked out
            raise ApiError(429, "too many failed API-key attempts from this address; wait before retrying",
                           "requests", code="too_many_auth_failures",
                           headers={"Retry-After": str(max(1, round(locked)))})
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        key = runtime.keys.authenticate(token.strip() if scheme.lower() == "bearer" else None)
        if key is None:
            runtime.auth_failures.check(address)
            raise ApiError(401, "missing or incorrect API key (send `Authorization: Bearer <key>`)",
                           code="invalid_api_key")
    identity = f"key:{key.name}" if key else f"addr:{address}"
    retry_after = runtime.limiter.check(identity)
    if retry_after is not None:
        raise ApiError(429, f"rate limit of {runtime.serve.rate_limit_per_minute} requests per minute reached",
                       "requests", code="rate_limit_exceeded", headers={"Retry-After": str(max(1, round(retry_after)))})
    return Caller(key, identity)


def _model_cards(runtime: ServeRuntime) -> list[dict[str, Any]]:
    created = now()
    cards = []
    if runtime.serve.serve_base:
        cards.append({"id": runtime.base_id, "object": "model", "created": created, "owned_by": "r1tune",
                      "root": runtime.base_id, "parent": None, "max_model_len": runtime.max_context})
    for name in runtime.registry.names():
        info = runtime.registry.adapters[name]
        cards.append({"id": name, "object": "model", "created": int(info.loaded_at), "owned_by": "r1tune",
                      "root": name, "parent": runtime.base_id, "version": info.version,
                      "max_model_len": runtime.max_context})
    if runtime.router.available:
        cards.append({"id": "auto", "object": "model", "created": created, "owned_by": "r1tune", "root": "auto",
                      "parent": runtime.base_id, "routes_to": runtime.router.names})
    return cards


# -- completions ------------------------------------------------------------------------------------------


async def _complete(runtime: ServeRuntime, body: ChatCompletionRequest, request: Request, who: Caller) -> Response:
    job = await run_in_threadpool(prepare_job, runtime, body, asyncio.get_running_loop())
    try:
        info = runtime.registry.submit(job.engine_request, job.adapter, body.user)
    except EngineBusy as err:
        _observe(runtime, job, "overloaded")
        raise busy_error(err) from None
    except AdapterError as err:  # unloaded since the request was validated
        raise ApiError(404, str(err), param="model", code="model_not_found") from None
    job.adapter_version = info.version if info else None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_stream(runtime, job, include_usage, who), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        async for _channel, _text in _pieces(runtime, job, request, stream=False):
            pass
    finally:
        job.engine_request.cancel()  # no-op when finished; stops generation if this handler is cancelled
    if job.finish_reason in FAILED:
        _observe(runtime, job, job.finish_reason)
        raise failure_error(job.finish_reason, _failure_message(job))
    message: dict[str, Any] = {"role": "assistant", "content": job.content}
    if job.functions and job.finish_reason != "content_filter":
        content, calls = parse_tool_calls(job.content, job.functions)
        if calls:  # before the record, so the log and the metrics say `tool_calls` as the stream path does
            message.update(content=content.strip() or None, tool_calls=calls)
            job.finish_reason = "tool_calls"
    await _record(runtime, job, who)
    if _think(runtime):
        message["reasoning_content"] = job.reasoning or None
        message["reasoning"] = job.reasoning or None
    return JSONResponse({
        "id": job.id, "object": "chat.completion", "created": job.created, "model": job.model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": job.finish_reason,
                     "logprobs": {"content": job.logprobs} if job.reports_logprobs else None}],
        "usage": _usage(job), "r1tune": _metadata(job),
    })


def _observe(runtime: ServeRuntime, job: Job, outcome: str, **values: Any) -> None:
    """Count a request once in `r1tune_requests_total`, whichever way it ended."""
    if not job.counted:
        job.counted = True
        runtime.metrics.observe(job.model_id, outcome, **values)


def _think(runtime: ServeRuntime) -> bool:
    return bool(runtime.loaded.renderer.fmt.think)  # type: ignore[attr-defined]


async def _events(job: Job, request: Request | None) -> AsyncIterator[TextDelta | Finished]:
    """The engine's events for this job; stops the generation if the client of a non-streamed request
    disconnects (a streamed response is cancelled by Starlette itself, see `_stream`)."""
    last_check = time.monotonic()
    while True:
        if request is None:  # no timer per token: the engine's deadline guarantees a Finished event
            event = await job.queue.get()
        else:
            try:
                event = await asyncio.wait_for(job.queue.get(), timeout=_DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                event = None
        if request is not None and time.monotonic() - last_check >= _DISCONNECT_POLL_S:
            last_check = time.monotonic()
            if await request.is_disconnected():
                job.engine_request.cancel()
        if event is None:
            continue
        yield event
        if isinstance(event, Finished):
            return


async def _pieces(runtime: ServeRuntime, job: Job, request: Request | None, stream: bool
                  ) -> AsyncIterator[tuple[str, str]]:
    """Guarded (channel, text) pieces in order; fills in the job's totals and finish reason."""
    splitter = ReasoningSplitter(_think(runtime))
    filters = {"reasoning": runtime.guards.output_filter(job.report, stream),
               "content": runtime.guards.output_filter(job.report, stream)}

    def guarded(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for channel, text in parts:
            released = filters[channel].feed(text)
            if released:
                out.append((channel, released))
        return out

    async for event in _events(job, request):
        if isinstance(event, TextDelta):
            if job.first_text_at is None:
                job.first_text_at = time.perf_counter()
            if event.logprobs and job.top_logprobs is not None and splitter.channel == "content":
                job.add_logprobs(runtime.logprob_formatter.entries(event.logprobs, job.top_logprobs))
            for channel, text in guarded(splitter.feed(event.text)):
                yield channel, _append(job, channel, text)
            if any(f.blocked for f in filters.values()):
                job.engine_request.cancel()
                break
            continue
        job.finish_reason = event.reason
        job.completion_tokens = event.completion_tokens
        job.failure = event.message
    if any(f.blocked for f in filters.values()):
        job.finish_reason = "content_filter"
        runtime.metrics.guard_events.labels("output_blocked").inc()
        if not stream:
            job.content, job.reasoning = runtime.guards.cfg.output_block_message, ""
        return
    if job.finish_reason not in ("stop", "length"):
        return
    for channel, text in guarded(splitter.flush()):
        yield channel, _append(job, channel, text)
    for channel in ("reasoning", "content"):
        rest = filters[channel].finish()
        if filters[channel].blocked:
            job.finish_reason = "content_filter"
            runtime.metrics.guard_events.labels("output_blocked").inc()
            if not stream:
                job.content, job.reasoning = runtime.guards.cfg.output_block_message, ""
            return
        if rest:
            yield channel, _append(job, channel, rest)
    prompt_text = "\n".join(m.content for m in job.messages)
    for text in runtime.guards.disclaimers_for(job.model_id, prompt_text, job.content):
        job.report.disclaimers.append(text)
        runtime.metrics.guard_events.labels("disclaimer").inc()
        yield "content", _append(job, "content", ("\n\n" if job.content else "") + text)
    if job.report.pii_masked:
        runtime.metrics.guard_events.labels("pii_masked").inc(sum(job.report.pii_masked.values()))


def _append(job: Job, channel: str, text: str) -> str:
    if channel == "reasoning":
        job.reasoning += text
    else:
        job.content += text
    return text


def _failure_message(job: Job) -> str:
    detail = job.failure
    if job.finish_reason == "timeout":
        return "the request did not finish within the server's time limit (serve.request_timeout_s)"
    if job.finish_reason == "cancelled":
        return detail or "the request was cancelled"
    return detail or "generation failed"


async def _stream(runtime: ServeRuntime, job: Job, include_usage: bool, who: Caller) -> AsyncIterator[str]:
    """The SSE stream: role chunk, content/reasoning chunks, final chunk, optional usage chunk, [DONE]."""
    yield _sse(chunk(job.id, job.created, job.model_id, {"role": "assistant", "content": ""}))
    calls_stream = ToolCallStream(job.functions) if job.functions else None
    try:
        async for channel, text in _pieces(runtime, job, None, stream=True):
            if channel == "content" and calls_stream is not None:
                text = calls_stream.feed(text)
                if not text:
                    continue
            delta = {"content": text} if channel == "content" else {"reasoning_content": text, "reasoning": text}
            logprobs = job.take_unsent_logprobs() if channel == "content" else None
            yield _sse(chunk(job.id, job.created, job.model_id, delta, logprobs=logprobs))
        if calls_stream is not None and job.finish_reason in ("stop", "length"):
            for delta in _tool_call_deltas(job, calls_stream):
                yield _sse(chunk(job.id, job.created, job.model_id, delta))
        if job.finish_reason in FAILED:
            _observe(runtime, job, job.finish_reason)
            yield _sse(failure_error(job.finish_reason, _failure_message(job)).body())
            yield "data: [DONE]\n\n"
            return
        await _record(runtime, job, who)
        yield _sse(chunk(job.id, job.created, job.model_id, {}, job.finish_reason,
                         extra={"r1tune": _metadata(job)}, logprobs=job.take_unsent_logprobs()))
        if include_usage:
            yield _sse(chunk(job.id, job.created, job.model_id, None, usage=_usage(job)))
        yield "data: [DONE]\n\n"
    except Exception as err:  # the status line is sent already: report the failure as an error event
        log.exception("streaming failed")
        yield _sse(error_body(f"internal error: {type(err).__name__}", "server_error"))
        yield "data: [DONE]\n\n"
    finally:
        # Runs when the client disconnects too (the response task is cancelled): stop generating.
        job.engine_request.cancel()
        _observe(runtime, job, "cancelled")  # no-op unless the stream ended before being counted


def _tool_call_deltas(job: Job, calls_stream: ToolCallStream) -> list[dict[str, Any]]:
    """The held-back text and the parsed tool calls as the stream's last deltas (one call per delta,
    complete, as OpenAI clients accumulate them by index)."""
    rest, calls = calls_stream.finish()
    deltas: list[dict[str, Any]] = [{"content": rest}] if rest else []
    if calls:
        job.finish_reason = "tool_calls"
        deltas += [{"tool_calls": [{"index": i, **call}]} for i, call in enumerate(calls)]
    return deltas


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _usage(job: Job) -> dict[str, int]:
    return {"prompt_tokens": job.prompt_tokens, "completion_tokens": job.completion_tokens,
            "total_tokens": job.prompt_tokens + job.completion_tokens}


def _metadata(job: Job) -> dict[str, Any]:
    return {"adapter": job.adapter, "adapter_version": job.adapter_version, "route": job.route,
            "guards": job.report.to_dict()}


async def _record(runtime: ServeRuntime, job: Job, who: Caller) -> None:
    """Log the completion (PII masked) before the client can see its id, so feedback can refer to it."""
    latency = time.perf_counter() - job.started
    ttft = None if job.first_text_at is None else job.first_text_at - job.started
    _observe(runtime, job, job.finish_reason, latency=latency, ttft=ttft, prompt_tokens=job.prompt_tokens,
             completion_tokens=job.completion_tokens)
    store = runtime.store
    if store is None:
        return

    def write() -> None:  # PII masking and the commit both run off the event loop
        mask = runtime.guards.mask_for_storage
        store.log_completion(
            id=job.id, model=job.model_id, adapter=job.adapter, adapter_version=job.adapter_version,
            messages=[{"role": m.role, "content": mask(m.content)} for m in job.messages],
            reasoning=mask(job.reasoning) or None, answer=mask(job.content), finish_reason=job.finish_reason,
            prompt_tokens=job.prompt_tokens, completion_tokens=job.completion_tokens, latency_ms=latency * 1000,
            ttft_ms=None if ttft is None else ttft * 1000, guards=_metadata(job), api_key=who.name,
        )

    try:
        await run_in_threadpool(write)
    except Exception:  # the answer is still worth sending; only its feedback will be refused (unknown id)
        log.exception("could not log completion %s", job.id)
        runtime.metrics.store_errors.inc()
