"""Turning a stream of token ids into text deltas: incremental detokenisation, stop strings and the
DeepSeek-R1 reasoning/answer split.

Both the streaming and the non-streaming paths go through these classes, so a streamed answer is exactly
the concatenation of its deltas and equals the non-streamed answer for the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

THINK_CLOSE = "</think>"
Channel = Literal["reasoning", "content"]


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
        keep = _longest_suffix_prefix(text, self._stop)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back text once generation has ended without completing a stop string."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


def _longest_suffix_prefix(text: str, patterns: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `patterns`."""
    best = 0
    for pattern in patterns:
        for n in range(min(len(pattern) - 1, len(text)), best, -1):
            if text.endswith(pattern[:n]):
                best = n
                break
    return best


class ReasoningSplitter:
    """Routes generated text to `reasoning` until `</think>`, then to `content` (DeepSeek-R1 format).

    The R1 prompt already opened `<think>\\n`, so the model's output starts inside the think block.
    Leading whitespace of each channel and trailing whitespace of the reasoning are dropped (R1 writes
    "\\n" around its reasoning and "\\n\\n" before the answer), and a partial `</think>` at the end of a
    delta is held until it is complete. Formats without a think block send everything to `content`.
    """

    def __init__(self, think: bool) -> None:
        self.channel: Channel = "reasoning" if think else "content"
        self._buffer = ""
        self._started = {"reasoning": False, "content": False}

    def feed(self, text: str) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        self._buffer += text
        if self.channel == "reasoning":
            if THINK_CLOSE in self._buffer:
                before, _, after = self._buffer.partition(THINK_CLOSE)
                self._emit(out, "reasoning", before.rstrip())
                self.channel, self._buffer = "content", after
            else:
                # Hold a partial `</think>` and the whitespace before it: reasoning ends without it.
                keep = _longest_suffix_prefix(self._buffer, [THINK_CLOSE])
                ready = self._buffer[: len(self._buffer) - keep]
                stripped = ready.rstrip()
                self._buffer = ready[len(stripped):] + self._buffer[len(ready):]
                self._emit(out, "reasoning", stripped)
                return out
        ready, self._buffer = self._buffer, ""
        self._emit(out, "content", ready)
        return out

    def flush(self) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        rest, self._buffer = self._buffer, ""
        self._emit(out, self.channel, rest.rstrip())
        return out

    def _emit(self, out: list[tuple[Channel, str]], channel: Channel, text: str) -> None:
        if not self._started[channel]:
            text = text.lstrip()
            if not text:
                return
            self._started[channel] = True
        if text:
            out.append((channel, text))
