"""The continuous-batching engine: one background thread steps the model one token at a time for every
running request, admits new requests between steps and drops finished, cancelled or expired ones.

Why not `model.generate` per request (the naive endpoint)? A decoding step of a 135M model on a CPU costs
about the same for 1 or 16 sequences (the time goes into reading weights and Python overhead, not into
arithmetic), so stepping all running requests together multiplies throughput, and because new requests
join the running batch instead of waiting for it to finish, nobody waits for someone else's long answer.

The running batch keeps one KV cache (a transformers `DynamicCache`, tensors `[batch, heads, time, dim]`)
with left padding: a request that joins is prefilled on its own (with others joining at the same time),
then its cache rows are left-padded to the batch's length and concatenated; a request that leaves has its
rows removed and the columns that became padding for everyone are trimmed. Each row carries its own
position id, so padding never shifts a sequence's positions.

The engine runs the model in the dtype it was loaded in (the server loads bf16 weights where the CPU
computes bf16 natively, see `runtime.load_serving_model`); sampling runs in float32.

Several LoRA adapters share one forward pass: PEFT's mixed-batch inference (`adapter_names=[...]`, one
name per row, `__base__` for the plain model) computes the base layers once for the whole batch and each
adapter's low-rank update only for its rows. Mixing costs an index and a scatter per layer and step, so a
batch whose rows all want the same thing skips it (`_adapter_mode`): all base rows run with the adapter
layers switched off, all rows of one adapter run with that adapter active. Measured with the demo adapter
on SmolLM2-135M (bf16, packed, 1 thread, batch 1): 44 ms per step mixed vs 32 ms with the adapter active,
and 32-37 ms vs 24 ms for base rows.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from r1tune.models.decoding import TextStream
from r1tune.models.device import model_device
from r1tune.serve import batch_cache
from r1tune.serve.logprobs import TokenLogprob
from r1tune.serve.sampling import SamplingParams, sample_tokens, seeded_generator

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
# What a client hears when a forward pass failed: the cause is logged, never sent, because the batch it
# failed in held other clients' requests.
INTERNAL_ERROR = "generation failed because of a server error; the details are in the server log"
# "unavailable": the model server behind a gateway could not be reached or was overloaded (serve/upstream.py)
FinishReason = Literal["stop", "length", "cancelled", "timeout", "error", "unavailable"]


@dataclass
class TextDelta:
    text: str
    logprobs: list[TokenLogprob] | None = None  # the tokens behind `text`, when the request asked for them


@dataclass
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    message: str = ""


Event = TextDelta | Finished


class EngineBusy(Exception):
    """The waiting queue is full; the caller should answer 503 and the client retry later."""


@dataclass
class EngineRequest:
    """One generation request. `emit` is called from the engine thread with each event, in order;
    the last event is always a `Finished`."""

    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[Event], None]
    adapter: str | None = None
    deadline: float | None = None  # time.monotonic() after which the request is dropped with "timeout"
    id: int = field(default_factory=itertools.count().__next__)
    cancelled: bool = False
    submitted: float = field(default_factory=time.monotonic)

    def cancel(self) -> None:
        """Ask the engine to drop this request at the next step (safe from any thread)."""
        self.cancelled = True


@dataclass
class _Sequence:
    request: EngineRequest
    text: TextStream
    generator: torch.Generator | None
    position: int  # position id of the next token fed to the model
    next_token: int = -1  # sampled but not yet fed
    generated: int = 0
    finished: FinishReason | None = None
    error: str = ""  # this sequence's own failure, reported to its own client only
    counts: dict[int, int] = field(default_factory=dict)  # generated token -> times, kept only for penalties
    grammar: Any = None  # its `structured.GrammarState`, when the request asked for a response format
    drawn: TokenLogprob | None = None  # the last sampled token's logprob, until the token is accepted
    pending: list[TokenLogprob] = field(default_factory=list)  # logprobs of tokens whose text is held back

    def fail(self, message: str) -> None:
        self.finished, self.error = "error", message


class Engine:
    """Runs generation for many concurrent requests on one model in a background thread."""

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        stop_token_ids: Sequence[int],
        max_batch_size: int = 16,
        max_waiting: int = 256,
        prefill_token_budget: int = 4096,
        max_context: int | None = None,
        seed: int = 0,
        gather_gap_s: float = 0.005,
        gather_max_s: float = 0.025,
    ) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.stop_token_ids = frozenset(stop_token_ids)
        self.max_batch_size = max_batch_size
        self.max_waiting = max_waiting
        self.prefill_token_budget = prefill_token_budget
        self.max_context = max_context
        self.gather_gap_s, self.gather_max_s = gather_gap_s, gather_max_s
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.uses_adapters = False  # set by the adapter registry when the model is a PeftModel
        self._adapter_state: tuple[str, str | None] | None = None  # what the PeftModel is set to (see _adapter_mode)
        self._generator = torch.Generator().manual_seed(seed)  # sampling draws on the CPU (serve/sampling.py)
        self.device = model_device(model)
        self._waiting: deque[EngineRequest] = deque()
        self._commands: deque[tuple[Callable[[], Any], Future]] = deque()
        self._wake = threading.Condition()
        self._running: list[_Sequence] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.name = "builtin"  # as serve.engine resolved
        self.steps = 0
        self.prefills = 0  # prefill forward passes; fewer per request means arrivals were batched
        self.tokens_generated = 0

    # -- public, thread-safe ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="r1tune-engine", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish every request with "cancelled" and stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, request: EngineRequest) -> None:
        """Queue a request; raises EngineBusy when `max_waiting` requests are already queued."""
        with self._wake:
            if self._stopping:
                raise EngineBusy("the server is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise EngineBusy(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(request)
            self._wake.notify()

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the engine thread between two steps (e.g. load an adapter) and return its future,
        so model changes never race with a forward pass."""
        future: Future = Future()
        with self._wake:
            self._commands.append((fn, future))
            self._wake.notify()
        if self._thread is None:  # not started (tests, CLI tools): run inline
            self._run_commands()
        return future

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    def problem(self) -> str | None:
        """Why this engine cannot answer now (`/health` says so with a 503), or None."""
        if self._thread is not None and not self._thread.is_alive() and not self._stopping:
            return "the generation thread has stopped"
        return None

    def adapters_in_use(self) -> set[str]:
        """Adapters of running or waiting requests. Complete only between steps (call it through `call`):
        during a step, requests being admitted are in neither list."""
        with self._wake:
            waiting = {r.adapter for r in self._waiting}
        running = {s.request.adapter for s in list(self._running)}
        return {name for name in running | waiting if name is not None}

    # -- the loop -----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            while not self._stopping:
                self._run_commands()
                self._iterate()
        self._fail_all("cancelled", "the server is shutting down")

    def _iterate(self) -> None:
        with self._wake:
            if not self._running and not self._waiting and not self._commands and not self._stopping:
                self._wake.wait(timeout=0.5)
            if not self._running and self._waiting:
                self._gather_arrivals()
        try:
            self._drop_finished()
            self._admit()
            self._drop_finished()  # a sequence ended by its first token must never be fed to a decode step
            if self._running:
                self._decode_step()
                self._drop_finished()
        except Exception:  # a bug outside the guarded forward passes: never take the server down
            log.exception("engine step failed")
            self._fail_all("error", INTERNAL_ERROR)

    def _gather_arrivals(self) -> None:
        """Before prefilling into an idle engine, wait while requests keep arriving (each within
        `gather_gap_s` of the last, at most `gather_max_s` in all), so they share one prefill.

        Why: clients whose answers finished in the same step send their next requests a few milliseconds
        apart. Without the wait, the first one was prefilled alone and the rest joined a step later: with 16
        clients the server logged prefill groups of 1+15, 2+1+13 and 2+2+3+9. Each extra group is one more
        forward pass and one more copy of the whole KV cache (`_merge`). A lone request waits one gap
        (5 ms, against about 2 s for a 64-token answer). Called with `_wake` held."""
        deadline = time.monotonic() + self.gather_max_s
        while len(self._waiting) < self.max_batch_size and not self._stopping:
            seen = len(self._waiting)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(timeout=min(self.gather_gap_s, left))
            if len(self._waiting) == seen:
                return

    def _run_commands(self) -> None:
        while True:
            with self._wake:
                if not self._commands:
                    return
                fn, future = self._commands.popleft()
            before = self._adapters_attached()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as err:
                    future.set_exception(err)
            if self._adapters_attached() != before:  # loaded or unloaded: set the PeftModel up afresh
                self._adapter_state = None

    def _adapters_attached(self) -> tuple[int, tuple[str, ...]]:
        """The model object and its adapters' names: what a command must change for `_adapter_mode` to
        set the PeftModel up again (a swap's in-use checks, every 50 ms, change nothing)."""
        return id(self.model), tuple(getattr(self.model, "peft_config", {}))

    # -- admission and prefill ----------------------------------------------------------------------------

    def _take_admissible(self) -> list[EngineRequest]:
        taken: list[EngineRequest] = []
        budget = self.prefill_token_budget
        with self._wake:
            while self._waiting and len(self._running) + len(taken) < self.max_batch_size:
                request = self._waiting[0]
                width = max([len(request.prompt_ids)] + [len(r.prompt_ids) for r in taken])
                if taken and width * (len(taken) + 1) > budget:
                    break
                taken.append(self._waiting.popleft())
        return taken

    def _admit(self) -> None:
        now = time.monotonic()
        joining: list[EngineRequest] = []
        loaded = set(self.model.peft_config) if self.uses_adapters else set()
        for request in self._take_admissible():
            if request.cancelled or (request.deadline is not None and now > request.deadline):
                reason: FinishReason = "cancelled" if request.cancelled else "timeout"
                _emit(request, Finished(reason, len(request.prompt_ids), 0))
            elif request.adapter is not None and request.adapter not in loaded:
                # unloaded between routing and admission: fail this request alone, not the whole batch
                _emit(request, Finished("error", len(request.prompt_ids), 0,
                                        f"the adapter {request.adapter!r} was unloaded"))
            else:
                joining.append(request)
        seqs = [seq for seq in map(self._new_sequence, joining) if seq is not None]
        if seqs:
            self._prefill_isolated(seqs)

    def _new_sequence(self, request: EngineRequest) -> _Sequence | None:
        """The per-request decoding state; a request whose own settings cannot be set up (a seed torch
        refuses, a stop list the detokeniser refuses) fails alone, before it can share a forward pass."""
        try:
            grammar = request.params.grammar.new_state() if request.params.grammar is not None else None
            return _Sequence(request, TextStream(self.tokenizer, request.params.stop), seeded_generator(request.params.seed),
                             len(request.prompt_ids), grammar=grammar)
        except Exception as err:
            _emit(request, Finished("error", len(request.prompt_ids), 0,
                                    f"invalid request settings: {type(err).__name__}: {err}"))
            return None

    def _prefill_isolated(self, seqs: list[_Sequence]) -> None:
        """Prefill the joining sequences together; if that forward pass fails (out of memory, say), retry
        once in two halves, and fail only a half that fails again. The running batch is never touched: a
        prefill fills a cache of its own."""
        try:
            self._prefill(seqs)
            return
        except Exception:
            log.exception("prefill of %d request(s) failed", len(seqs))
        groups = _halves(seqs) if len(seqs) > 1 else []
        if not groups:
            self._fail_sequences(seqs)
        for group in groups:
            try:
                self._prefill(group)
            except Exception:
                log.exception("prefill retry of %d request(s) failed", len(group))
                self._fail_sequences(group)

    def _prefill(self, seqs: list[_Sequence]) -> None:
        import torch
        from transformers import DynamicCache

        requests = [s.request for s in seqs]
        width = max(len(r.prompt_ids) for r in requests)
        ids = torch.tensor([[self.pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests],
                           device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests],
                            device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(ids, mask, positions, cache, [r.adapter for r in requests])
        self.prefills += 1
        tokens = self._sample(logits, seqs)  # before the merge: a failure here leaves the running batch as it was
        self._merge(seqs, cache, mask)
        self._accept_tokens(seqs, tokens)

    def _fail_sequences(self, seqs: list[_Sequence]) -> None:
        for seq in seqs:
            _emit(seq.request, Finished("error", len(seq.request.prompt_ids), seq.generated, INTERNAL_ERROR))

    def _merge(self, seqs: list[_Sequence], cache: Any, mask: torch.Tensor) -> None:
        """Append freshly prefilled rows to the running batch, left-padding whichever side is shorter."""
        if not self._running:
            self._running, self._cache, self._mask = seqs, cache, mask
            return
        assert self._mask is not None
        self._mask = batch_cache.join_rows(self._cache, self._mask, cache, mask)
        self._running = self._running + seqs

    # -- decoding -----------------------------------------------------------------------------------------

    def _decode_step(self) -> None:
        """One token for every running sequence. If the batched forward pass fails (out of memory, say),
        the cache is rolled back and the step retried once in two halves; only a half that fails again is
        failed, with a message that names no other request's error."""
        import torch

        assert self._mask is not None
        seqs = self._running
        mask = torch.cat([self._mask, torch.ones(len(seqs), 1, dtype=self._mask.dtype, device=self.device)], dim=1)
        old_len = self._mask.shape[1]
        try:
            logits = self._decode_rows(seqs, mask)
        except Exception:
            log.exception("decode step of %d sequence(s) failed; retrying in halves", len(seqs))
            batch_cache.cut_columns(self._cache, old_len)
            self._decode_in_halves(mask)
        else:
            self._mask = mask
            self._finish_step(seqs, logits)

    def _decode_rows(self, seqs: list[_Sequence], mask: torch.Tensor) -> torch.Tensor:
        import torch

        ids = torch.tensor([[s.next_token] for s in seqs], device=self.device)
        positions = torch.tensor([[s.position] for s in seqs], device=self.device)
        return self._forward(ids, mask, positions, self._cache, [s.request.adapter for s in seqs])

    def _finish_step(self, seqs: list[_Sequence], logits: torch.Tensor) -> None:
        for s in seqs:
            s.position += 1
        self._accept_tokens(seqs, self._sample(logits, seqs))
        self.steps += 1

    def _decode_in_halves(self, mask: torch.Tensor) -> None:
        """Step each half of the running batch on its own slice of the cache, then rebuild the batch from
        the halves that succeeded; the rows of a failed half are finished with `INTERNAL_ERROR`."""
        import torch

        full = batch_cache.layer_tensors(self._cache)
        kept: list[tuple[list[int], batch_cache.LayerTensors, torch.Tensor]] = []
        for rows in _halves(list(range(len(self._running)))):
            index = torch.tensor(rows, device=self.device)
            batch_cache.show_rows(self._cache, full, index)
            group = [self._running[i] for i in rows]
            try:
                logits = self._decode_rows(group, mask[index])
            except Exception:
                log.exception("decode retry of %d sequence(s) failed", len(group))
                self._fail_sequences(group)
                continue
            kept.append((rows, batch_cache.layer_tensors(self._cache), logits))
        self._rebuild_from(kept, mask)

    def _rebuild_from(self, kept: list, mask: torch.Tensor) -> None:
        import torch

        if not kept:
            self._running, self._cache, self._mask = [], None, None
            return
        rows = [i for group_rows, _, _ in kept for i in group_rows]
        batch_cache.stack_rows(self._cache, [tensors for _, tensors, _ in kept])
        seqs = [self._running[i] for i in rows]
        self._running, self._mask = seqs, mask[torch.tensor(rows, device=self.device)]
        self._finish_step(seqs, torch.cat([logits for _, _, logits in kept]))

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any,
                 adapters: list[str | None]) -> torch.Tensor:
        """Logits of the last position of every row, `[batch, vocab]`, in the model's dtype."""
        extra: dict[str, Any] = {}
        if self.uses_adapters and self._adapter_mode(adapters) == "mixed":
            extra["adapter_names"] = [a or BASE_ADAPTER for a in adapters]
        # Without padding (a single request, or equal lengths) no mask is needed, and the model then skips
        # building a 4-D mask and runs attention on its unmasked (causal) path.
        attention_mask = None if bool(mask.all()) else mask
        out = self.model(input_ids=ids, attention_mask=attention_mask, position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1, **extra)
        return out.logits[:, -1, :]

    def _adapter_mode(self, adapters: list[str | None]) -> str:
        """Set the PeftModel up for this batch and say how to call it: "base" (adapter layers off), "one"
        (the rows' single adapter active) or "mixed" (pass `adapter_names`). Switches only on a change.

        The "one" path adds the fp32 LoRA update before rounding to bf16, the mixed path after, so a
        request's bf16 output can differ in the last bit between a batch of its own adapter and a mixed
        batch; in fp32 the two are identical (tested)."""
        names = set(adapters)
        if len(names) > 1:
            state: tuple[str, str | None] = ("mixed", None)
        elif None in names:
            state = ("base", None)
        else:
            state = ("one", next(iter(names)))
        if state != self._adapter_state:
            if state[0] == "base":
                self.model.base_model.disable_adapter_layers()
            else:
                self.model.base_model.enable_adapter_layers()
                if state[0] == "one":
                    self.model.set_adapter(state[1])
            self._adapter_state = state
        return state[0]

    def _sample(self, logits: torch.Tensor, seqs: list[_Sequence]) -> list[int]:
        return sample_tokens(logits, seqs, self._generator)

    def _accept_tokens(self, seqs: list[_Sequence], tokens: list[int]) -> None:
        for seq, token in zip(seqs, tokens, strict=True):
            if seq.finished:
                continue
            try:
                self._accept_token(seq, token)
            except Exception as err:  # detokenising or stop handling of this sequence: fail it alone
                log.exception("sequence %d failed", seq.request.id)
                seq.fail(f"generation failed: {type(err).__name__}")

    def _accept_token(self, seq: _Sequence, token: int) -> None:
        request = seq.request
        seq.generated += 1
        self.tokens_generated += 1
        if request.params.adjusts_logits:
            seq.counts[token] = seq.counts.get(token, 0) + 1
        if token in self.stop_token_ids:
            seq.finished = "stop"
            return
        if seq.grammar is not None:
            seq.grammar.accept(token)
        if seq.drawn is not None:
            seq.pending.append(seq.drawn)
        text = seq.text.push(token)
        if text:
            _emit(request, TextDelta(text, seq.pending or None))
            seq.pending = []
        if seq.text.stopped:
            seq.finished = "stop"
        elif seq.generated >= request.params.max_tokens or (
            self.max_context is not None and seq.position >= self.max_context
        ):
            seq.finished = "length"
        seq.next_token = token

    def _drop_finished(self) -> None:
        """Finish and remove rows that are done, cancelled or past their deadline; trim dead padding."""
        now = time.monotonic()
        keep: list[int] = []
        for i, seq in enumerate(self._running):
            request = seq.request
            if seq.finished is None and request.cancelled:
                seq.finished = "cancelled"
            elif seq.finished is None and request.deadline is not None and now > request.deadline:
                seq.finished = "timeout"
            if seq.finished is None:
                keep.append(i)
                continue
            if seq.finished in ("stop", "length"):
                rest = seq.text.flush()
                if rest or seq.pending:
                    _emit(request, TextDelta(rest, seq.pending or None))
            _emit(request, Finished(seq.finished, len(request.prompt_ids), seq.generated, seq.error))
        if len(keep) == len(self._running):
            return
        if not keep:
            self._running, self._cache, self._mask = [], None, None
            return
        assert self._mask is not None
        self._mask = batch_cache.keep_rows(self._cache, self._mask, keep)
        self._running = [self._running[i] for i in keep]

    def _fail_all(self, reason: FinishReason, message: str) -> None:
        for seq in self._running:
            _emit(seq.request, Finished(reason, len(seq.request.prompt_ids), seq.generated, message))
        self._running, self._cache, self._mask = [], None, None
        if reason == "cancelled":
            with self._wake:
                waiting, self._waiting = list(self._waiting), deque()
            for request in waiting:
                _emit(request, Finished(reason, len(request.prompt_ids), 0, message))


def _emit(request: EngineRequest, event: Event) -> None:
    try:
        request.emit(event)
    except Exception:  # the receiving side is gone (event loop closed); nothing is waiting for this
        request.cancelled = True


def _halves(items: list) -> list[list]:
    middle = (len(items) + 1) // 2
    return [part for part in (items[:middle], items[middle:]) if part]

