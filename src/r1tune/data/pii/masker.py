"""The masker: replaces detected spans by placeholders, pseudonyms or keyed hashes, and counts them."""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from collections import Counter
from collections.abc import Iterable

from r1tune.data.pii.detector import PiiDetector
from r1tune.data.pii.pseudonyms import _FAKERS, _fill_digits, normalize_value
from r1tune.data.pii.spans import NameFinder, PersonScope, PiiSpan, Strategy
from r1tune.errors import R1TuneError


class PiiMasker:
    """Replace detected PII with placeholders, consistent pseudonyms, or salted short hashes.

    * placeholder: `[PHONE]` — nothing to learn from, nothing to leak.
    * pseudonym: the same real value always becomes the same realistic fake within this masker (and across
      maskers sharing a salt); distinct values get distinct fakes. Without a salt a random one is drawn, so
      fakes cannot be reversed by hashing every phone number, but are only stable inside this masker.
    * hash: `[PHONE:3fa2c1]` — HMAC-SHA256(salt, type+value); joins stay possible, values are not recoverable.
      A salt is required: an unsalted hash of an 11-digit phone is reversed by brute force in seconds.
      6 hex digits (24 bits) collide with 50% probability among ~4,800 distinct values of one type; raise
      `hash_len` when hashes are used to join records.

    Values are normalised before pseudonyms/hashes (`138 1234 5678` == `+86 13812345678`). The pseudonym
    strategy keeps one map entry per distinct value (memory grows with the number of distinct values).
    """

    def __init__(self, strategy: Strategy = "placeholder", salt: str = "", types: Iterable[str] | None = None,
                 *, names: NameFinder = "free", person_scope: PersonScope = "all", hash_len: int = 6) -> None:
        """Validate the strategy early; the hash strategy refuses to run without a secret salt."""
        if not 4 <= hash_len <= 64:
            raise R1TuneError(f"hash_len must be between 4 and 64, got {hash_len}")
        self.hash_len = hash_len
        if strategy not in ("placeholder", "pseudonym", "hash"):
            raise R1TuneError(f"unknown PII masking strategy {strategy!r}", hint="use placeholder, pseudonym or hash")
        if strategy == "hash" and not salt:
            raise R1TuneError("the hash strategy needs a secret salt",
                              hint="pass salt=... (keep it secret; reuse it to get the same hashes across runs)")
        self.strategy = strategy
        self.detector = PiiDetector(types, names, person_scope)
        self._key = (salt or secrets.token_hex(16)).encode("utf-8")
        self.counts: Counter[str] = Counter()
        self._fakes: dict[tuple[str, str], str] = {}
        self._used: set[tuple[str, str]] = set()

    def mask(self, text: str) -> tuple[str, list[PiiSpan]]:
        """Return the masked text and the spans (offsets refer to the input text)."""
        spans = self.detector.detect(text)
        if not spans:
            return text, spans
        parts, pos = [], 0
        for sp in spans:
            parts.append(text[pos:sp.start])
            parts.append(self._replacement(sp))
            pos = sp.end
            self.counts[sp.type] += 1
        parts.append(text[pos:])
        return "".join(parts), spans

    def _digest(self, pii_type: str, key: str, attempt: int = 0) -> bytes:
        """Keyed hash of one normalised value; `attempt` re-rolls a pseudonym on collision."""
        msg = f"{pii_type}\x00{key}\x00{attempt}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def _replacement(self, sp: PiiSpan) -> str:
        """Text that replaces one span under the configured strategy."""
        if self.strategy == "placeholder":
            return f"[{sp.type}]"
        key = normalize_value(sp.type, sp.text)
        if self.strategy == "hash":
            return f"[{sp.type}:{self._digest(sp.type, key).hex()[:self.hash_len]}]"
        return self.pseudonym(sp.type, sp.text, key)

    def pseudonym(self, pii_type: str, value: str, key: str | None = None) -> str:
        """Stable fake for `value`, re-shaped to the way this occurrence is written (separators, +86, case)."""
        key = key if key is not None else normalize_value(pii_type, value)
        fake_norm = self._fakes.get((pii_type, key))
        if fake_norm is None:
            fake_norm = self._new_fake(pii_type, value, key)
            self._fakes[(pii_type, key)] = fake_norm
        return _reshape(pii_type, value, fake_norm)

    def _new_fake(self, pii_type: str, value: str, key: str) -> str:
        """Draw fakes from the keyed hash until one differs from the real value and all other values' fakes."""
        fake_norm = key
        for attempt in range(64):
            seed = int.from_bytes(self._digest(pii_type, key, attempt)[:8], "big")
            fake_norm = normalize_value(pii_type, _FAKERS[pii_type](random.Random(seed), value))
            if fake_norm != key and (pii_type, fake_norm) not in self._used:
                break
        self._used.add((pii_type, fake_norm))
        return fake_norm


def _reshape(pii_type: str, value: str, fake_norm: str) -> str:
    """Write a normalised fake in the real value's shape: `+86 138-…` stays `+86 1xx-…`, `…x` stays lower-case."""
    if pii_type in ("PHONE", "BANK_CARD") and sum(c.isdigit() for c in value) >= len(fake_norm):
        return _fill_digits(value, fake_norm)
    if pii_type == "CN_ID" and value.endswith("x"):
        return fake_norm[:-1] + fake_norm[-1].lower()
    return fake_norm
