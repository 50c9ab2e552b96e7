"""The one decoder of model output: token ids → text → (reasoning, answer, finish reason).

Evaluation, `r1tune chat` and the streaming server all go through these classes, so eval scores exactly the
answer the server returns for the same tokens, and a streamed answer is exactly the concatenation of its
deltas.

The rule for `</think>`: the *first* close tag ends the reasoning (as vLLM's and SGLang's DeepSeek-R1
reasoning parsers do). The prompt already opened `<think>`, so a reasoning model's output normally holds only
`</think>`; a leading `<think>` that a model writes anyway is dropped. Without any `</think>` (the token limit
hit while thinking) everything is reasoning and the answer is empty. Whitespace: leading whitespace of each
part and trailing whitespace of the reasoning are dropped (R1 writes "\\n" around its reasoning and "\\n\\n"
before the answer); the answer's trailing whitespace is kept, because a stream cannot take back what it sent.
Special tokens are never part of the text (the think tags are ordinary added tokens in the R1 distills).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
Channel = Literal["reasoning", "content"]
FinishReason = Literal["stop", "length"]


class TextStream:
    """Token ids in, text out, stopping at the first stop string (which is never emitted).

    Detokenisation uses the tokenizers library's `DecodeStream`, which buffers byte-fallback tokens until
    they form whole UTF-8 characters (a Chinese character often spans two or three tokens). Text that could
    still turn into a stop string is held back until it either completes the stop string or cannot.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: Sequence[str] = ()) -> None:
        from tokenizers.decoders import DecodeStream

        self._backend = tokenizer.backend_tokenizer
        self._decoder = DecodeStream(skip_special_tokens=True)
        self._stop = [s for s in stop if s]
        self._held = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now safe to emit (possibly empty)."""
        if self.stopped:
            return ""
        piece = self._decoder.step(self._backend, token_id)
        if not piece:
            return ""
        return self._release(self._held + piece)

    def _release(self, text: str) -> str:
        if not self._stop:
            return text
        hits = [(text.find(s), s) for s in self._stop if s in text]
        if hits:
            self.stopped = True
            self._held = ""
            return text[: min(pos for pos, _ in hits)]
        keep = longest_suffix_prefix(text, self._stop)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back text once generation has ended without completing a stop string."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


class ReasoningSplitter:
    """Routes text to `reasoning` until the first `</think>`, then to `content`; formats without a think
    block send everything to `content`. A partial tag at the end of a delta is held until it is complete,
    so any split of the same text into deltas gives the same two parts (see the module's rule)."""

    def __init__(self, think: bool) -> None:
        self.channel: Channel = "reasoning" if think else "content"
        self._buffer = ""
        self._started = {"reasoning": False, "content": False}
        self._open_tag_possible = think  # a leading `<think>` is dropped

    def feed(self, text: str) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        self._buffer += text
        if self._open_tag_possible and not self._drop_leading_open_tag():
            return out
        if self.channel == "reasoning":
            if THINK_CLOSE not in self._buffer:
                self._release_reasoning(out)
                return out
            before, _, after = self._buffer.partition(THINK_CLOSE)
            self._emit(out, "reasoning", before.rstrip())
            self.channel, self._buffer = "content", after
        ready, self._buffer = self._buffer, ""
        self._emit(out, "content", ready)
        return out

    def flush(self) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        rest, self._buffer = self._buffer, ""
        self._emit(out, self.channel, rest.rstrip() if self.channel == "reasoning" else rest)
        return out

    def _drop_leading_open_tag(self) -> bool:
        """False while the buffer could still become a leading `<think>` (wait for more text)."""
        head = self._buffer.lstrip()
        if head.startswith(THINK_OPEN):
            self._buffer = head[len(THINK_OPEN):]
        elif THINK_OPEN.startswith(head):
            return False
        self._open_tag_possible = False
        return True

    def _release_reasoning(self, out: list[tuple[Channel, str]]) -> None:
        """Emit reasoning up to a possible partial `</think>` and the whitespace before it."""
        keep = longest_suffix_prefix(self._buffer, [THINK_CLOSE])
        ready = self._buffer[: len(self._buffer) - keep]
        stripped = ready.rstrip()
        self._buffer = ready[len(stripped):] + self._buffer[len(ready):]
        self._emit(out, "reasoning", stripped)

    def _emit(self, out: list[tuple[Channel, str]], channel: Channel, text: str) -> None:
        if not self._started[channel]:
            text = text.lstrip()
            if not text:
                return
            self._started[channel] = True
        if text:
            out.append((channel, text))


def split_reasoning(text: str, think: bool) -> tuple[str | None, str]:
    """(reasoning, answer) of a whole output; reasoning is None for formats without a think block."""
    return _join_parts(_split(text, think), think)


def _join_parts(parts: Iterable[tuple[Channel, str]], think: bool) -> tuple[str | None, str]:
    reasoning, content = "", ""
    for channel, text in parts:
        if channel == "reasoning":
            reasoning += text
        else:
            content += text
    return (reasoning if think else None), content


def _split(text: str, think: bool) -> list[tuple[Channel, str]]:
    splitter = ReasoningSplitter(think)
    return splitter.feed(text) + splitter.flush()


@dataclass(frozen=True)
class DecodedOutput:
    text: str  # everything generated, up to a stop token or stop string
    reasoning: str | None
    answer: str
    finish_reason: FinishReason
    num_tokens: int  # tokens generated, the stop token included, up to the one that completed a stop string


def decode_output(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], think: bool,
                  stop_token_ids: Iterable[int], stop_strings: Sequence[str] = ()) -> DecodedOutput:
    """Decode one generated sequence token by token, exactly as the server streams it."""
    stops = set(stop_token_ids)
    stream = TextStream(tokenizer, stop_strings)
    text, finish, used = "", "length", 0
    for token in ids:
        used += 1
        if token in stops:
            finish = "stop"
            break
        text += stream.push(token)
        if stream.stopped:
            finish = "stop"
            break
    text += stream.flush()
    reasoning, answer = split_reasoning(text, think)
    return DecodedOutput(text, reasoning, answer, finish, used)  # type: ignore[arg-type]


def longest_suffix_prefix(text: str, patterns: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `patterns`."""
    best = 0
    for pattern in patterns:
        for n in range(min(len(pattern) - 1, len(text)), best, -1):
            if text.endswith(pattern[:n]):
                best = n
                break
    return best
