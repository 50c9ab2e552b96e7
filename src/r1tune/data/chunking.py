"""Cut documents into training chunks that fit the model: token-aware, overlapping, cut at sentence ends.

Rules, in order of priority:
* a chunk never spans two sections: it carries its section's heading path, and the first chunk of a
  section starts with the heading line itself (a heading is never left at the end of a chunk);
* cuts fall on sentence ends (。！？；!?; … and `.` before a space) or paragraph breaks; only a single
  sentence longer than `max_tokens` is cut inside;
* consecutive chunks of a section share up to `overlap_tokens` of whole trailing sentences;
* sections smaller than `min_tokens` are merged into the next section instead of becoming crumbs.
Token counts come from the model's tokenizer when one is given, else from `approx_tokens`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from r1tune.data.documents import Document

TokenCounter = Callable[[str], int]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SENTENCE = re.compile(
    r".*?(?:[。！？；!?;…]+[”’」』）)\"']*|\.[”’\")']*(?=\s)|\n)\s*|.+$", re.S
)


def approx_tokens(text: str) -> int:
    """Rough token count without a tokenizer: one per CJK character, 1.3 per other word.

    Byte-level BPE vocabularies trained mostly on English spend ~1 token per common Chinese character and
    ~1.3 per English word; the estimate only decides chunk sizes when no tokenizer is configured.
    """
    cjk = len(_CJK.findall(text))
    words = len(_CJK.sub(" ", text).split())
    return cjk + math.ceil(1.3 * words)


def tokenizer_counter(tokenizer) -> TokenCounter:
    """A counter backed by a Hugging Face tokenizer (no special tokens)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def split_sentences(text: str) -> list[str]:
    """Sentences with their end punctuation and trailing whitespace; `"".join(result) == text`."""
    return [m.group() for m in _SENTENCE.finditer(text) if m.group()]


@dataclass
class Chunk:
    text: str
    heading: str
    where: str
    index: int  # position within the document


@dataclass
class _Section:
    heading: str
    where: str
    paragraphs: list[tuple[str, str]]  # (text, where)


@dataclass
class _Unit:
    text: str
    tokens: int
    where: str


def chunk_document(doc: Document, count: TokenCounter, max_tokens: int = 512, overlap_tokens: int = 64,
                   min_tokens: int = 16) -> list[Chunk]:
    """All chunks of one document, in reading order."""
    if overlap_tokens >= max_tokens:
        overlap_tokens = max_tokens // 4
    chunks: list[Chunk] = []
    for section in _merge_small(_sections(doc), count, min_tokens):
        units = _units(section, count, max_tokens)
        for text, where in _pack(units, max_tokens, overlap_tokens):
            chunks.append(Chunk(text, section.heading, where, len(chunks)))
    return chunks


def _sections(doc: Document) -> list[_Section]:
    sections: list[_Section] = []
    for para in doc.paragraphs:
        if para.is_heading or not sections or sections[-1].heading != para.heading:
            sections.append(_Section(para.heading, para.where, []))
        sections[-1].paragraphs.append((para.text, para.where))
    return sections


def _merge_small(sections: list[_Section], count: TokenCounter, min_tokens: int) -> list[_Section]:
    """A heading with a line under it is not worth a chunk of its own: fold it into the next section."""
    out: list[_Section] = []
    carry: _Section | None = None
    for section in sections:
        if carry is not None:
            section = _Section(section.heading, carry.where, carry.paragraphs + section.paragraphs)
            carry = None
        if count("\n".join(t for t, _ in section.paragraphs)) < min_tokens:
            carry = section
            continue
        out.append(section)
    if carry is not None:
        if out:
            out[-1].paragraphs.extend(carry.paragraphs)
        else:
            out.append(carry)
    return out


def _units(section: _Section, count: TokenCounter, max_tokens: int) -> list[_Unit]:
    """Sentences (each paragraph's last one ending in a newline), over-long ones cut to fit."""
    units: list[_Unit] = []
    for text, where in section.paragraphs:
        sentences = split_sentences(text.strip())
        if sentences:
            sentences[-1] = sentences[-1].rstrip() + "\n"
        for sentence in sentences:
            tokens = count(sentence)
            if tokens <= max_tokens:
                units.append(_Unit(sentence, tokens, where))
                continue
            pieces = math.ceil(tokens / max_tokens) + 1  # +1: token density varies inside a sentence
            size = math.ceil(len(sentence) / pieces)
            for start in range(0, len(sentence), size):
                piece = sentence[start:start + size]
                units.append(_Unit(piece, count(piece), where))
    return units


def _pack(units: list[_Unit], max_tokens: int, overlap_tokens: int) -> list[tuple[str, str]]:
    """Greedy packing of whole units; each new chunk repeats the previous one's last sentences."""
    out: list[tuple[str, str]] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that are not overlap
    for unit in units:
        total = sum(u.tokens for u in current)
        if current and fresh and total + unit.tokens > max_tokens:
            out.append(_emit(current, fresh))
            current = _overlap(current, overlap_tokens, max_tokens - unit.tokens)
            fresh = 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        out.append(_emit(current, fresh))
    return [(text, where) for text, where in out if text.strip()]


def _emit(current: list[_Unit], fresh: int) -> tuple[str, str]:
    first_new = current[len(current) - fresh]
    return "".join(u.text for u in current).strip(), first_new.where


def _overlap(previous: list[_Unit], overlap_tokens: int, room: int) -> list[_Unit]:
    """Trailing whole sentences of the previous chunk that fit in the overlap budget."""
    kept: list[_Unit] = []
    budget = min(overlap_tokens, room)
    for unit in reversed(previous):
        if unit.tokens > budget:
            break
        kept.insert(0, unit)
        budget -= unit.tokens
    return kept
