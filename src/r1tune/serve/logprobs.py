"""`logprobs` / `top_logprobs` in OpenAI's shape: each generated token with its log probability, its bytes
and, on request, the most likely alternatives at that step.

Log probabilities are those the token was drawn from before temperature and top-p: the model's logits after
`logit_bias`, penalties and a response format's grammar (vLLM reports processed logprobs the same way).
Stop tokens are not listed, as in OpenAI's API; for reasoning models only answer tokens are.

`bytes` matter because a token can hold part of a character (a Chinese character is often two or three
byte-level tokens): its text is then U+FFFD, and only the bytes let a client join tokens back into text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log probability and the top alternatives at that step (token id, logprob)."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


class LogprobFormatter:
    """Turns `TokenLogprob`s into OpenAI's entries for one tokenizer (token texts and bytes cached)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        decoder = tokenizer.backend_tokenizer.decoder
        self._byte_level = decoder is not None and type(decoder).__name__ == "ByteLevel"
        self._bytes_of_char = _byte_level_alphabet() if self._byte_level else {}

    def entries(self, logprobs: list[TokenLogprob], top: int) -> list[dict[str, Any]]:
        return [{**self._token(lp.token_id, lp.logprob),
                 "top_logprobs": [self._token(t, v) for t, v in lp.top[:top]]} for lp in logprobs]

    def _token(self, token_id: int, logprob: float) -> dict[str, Any]:
        text, raw = self._describe(token_id)
        return {"token": text, "logprob": max(logprob, -9999.0), "bytes": raw}

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (one formatter per server, kept for its lifetime)
    def _describe(self, token_id: int) -> tuple[str, list[int]]:
        if self._byte_level:
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            if all(c in self._bytes_of_char for c in piece):
                raw = bytes(self._bytes_of_char[c] for c in piece)
                return raw.decode("utf-8", errors="replace"), list(raw)
        text = self.tokenizer.decode([token_id])
        return text, list(text.encode("utf-8"))


def _byte_level_alphabet() -> dict[str, int]:
    """Character → byte of the GPT-2 byte-level vocabulary (SmolLM2, Qwen and the R1 distills use it): the
    printable bytes stand for themselves, the other 68 for the characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in chars)
    chars.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return {c: b for b, c in chars.items()}
