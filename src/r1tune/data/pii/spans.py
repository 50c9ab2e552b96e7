"""PII types and the span a detector reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PII_TYPES: tuple[str, ...] = (
    "CN_ID", "PHONE", "BANK_CARD", "USCC", "PASSPORT", "EMAIL", "IP", "URL_SECRET", "PERSON", "ADDRESS",
)
Strategy = Literal["placeholder", "pseudonym", "hash"]
NameFinder = Literal["cues", "free", "thulac"]
NAME_FINDERS: tuple[str, ...] = ("cues", "free", "thulac")
PersonScope = Literal["all", "private"]


@dataclass(frozen=True)
class PiiSpan:
    """One detected PII value: `text[start:end]` of the *original* text, its type and a confidence in [0, 1]."""

    start: int
    end: int
    type: str
    text: str
    score: float
