"""Key facts of an answer, for the two questions a bank or a clinic asks first: did the answer state the
facts of the reference, and did it make any up?

A fact is one of: a number with its unit (ranges and thousands separators normalised: "5 to 7 business
days" = "5-7 个工作日" = ("number", "5-7 day")), a long digit string (phone numbers, account and order
numbers), a URL, an e-mail address, a code (letters and digits mixed, e.g. `CARD-2024`, `A7X`), a UI path
(`Cards > Freeze`, `设置 > 限额`) or a glossary term. Text is NFKC-normalised first, so full-width digits
count as digits. Matching is exact on the normalised form.

- key-fact recall: the share of the reference's facts that the answer states (examples whose reference
  states none are not scored);
- invented facts: the share of the answer's facts found neither in the reference nor in the prompt (an
  answer that states no fact invents none).

A user who knows a record's facts best lists them in ``meta.key_facts`` ("Cards > Freeze", "5-7 business
days", "the fee is waived"). Each listed fact is one more fact the answer must state: stated when the
answer contains it after normalising (NFKC, case, spacing), or when it holds extractable facts and the
answer states all of them ("5 to 7 days" states "5-7 business days").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

Fact = tuple[str, str]  # (kind, normalised value)

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。；、）)]+", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PATH = re.compile(r"[^\s>→›,，。；;:：]{1,30}(?:\s*[>→›]\s*[^\s>→›,，。；;:：]{1,30})+")
# Codes mix digits with at least one capital letter (`CARD-2024`, `A7X`), so "24-hour" stays a number.
_CODE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9-]*[A-Z])(?=[A-Za-z0-9-]*\d)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9])")
_LONG_DIGITS = re.compile(r"(?<![\d.])\+?\d[\d -]{5,}\d(?![\d.])")
_RANGE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-|–|—|~|～|to|至|到)\s*(\d+(?:\.\d+)?)", re.I)
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Units after a number, longest first; each maps to one canonical name.
_UNITS = {
    "business days": "day", "working days": "day", "days": "day", "day": "day", "个工作日": "day", "工作日": "day",
    "天": "day", "日": "day", "hours": "hour", "hour": "hour", "小时": "hour", "minutes": "minute",
    "minute": "minute", "分钟": "minute", "weeks": "week", "week": "week", "周": "week", "months": "month",
    "month": "month", "个月": "month", "years": "year", "year": "year", "年": "year", "%": "%", "percent": "%",
    "元": "cny", "块": "cny", "yuan": "cny", "rmb": "cny", "cny": "cny", "usd": "usd", "dollars": "usd",
    "万": "10k", "次": "times", "times": "times",
}
_UNIT = re.compile(r"[\s-]*(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")", re.I)
_CURRENCY_BEFORE = {"$": "usd", "¥": "cny", "￥": "cny"}


def extract_facts(text: str, glossary: Iterable[str] = ()) -> set[Fact]:
    """The facts a text states (see the module docstring for the kinds and their normal forms)."""
    text = unicodedata.normalize("NFKC", text or "")
    facts: set[Fact] = set()
    for kind, pattern, norm in (("url", _URL, _norm_url), ("email", _EMAIL, str.lower), ("path", _PATH, _norm_path)):
        text = _take(text, pattern, kind, norm, facts)
    text = _take(text, _LONG_DIGITS, "digits", lambda s: re.sub(r"\D", "", s), facts,
                 keep=lambda s: len(re.sub(r"\D", "", s)) >= 7)
    text = _take(text, _CODE, "code", str.upper, facts)
    facts |= _numbers(_THOUSANDS.sub("", text))
    lowered = text.lower()
    facts |= {("term", t.lower()) for t in glossary if t and t.lower() in lowered}
    return facts


def _take(text: str, pattern: re.Pattern[str], kind: str, norm, facts: set[Fact], keep=lambda s: True) -> str:
    """Record every match as a fact and blank it out, so its digits are not read again as numbers."""
    def cut(m: re.Match[str]) -> str:
        if not keep(m.group()):
            return m.group()
        facts.add((kind, norm(m.group())))
        return " " * len(m.group())
    return pattern.sub(cut, text)


def _norm_url(url: str) -> str:
    url = re.sub(r"^https?://", "", url.lower()).rstrip("/.")
    return url[4:] if url.startswith("www.") else url


def _norm_path(path: str) -> str:
    return " > ".join(part.strip().strip(".!?。！？").lower() for part in re.split(r"[>→›]", path))


def _numbers(text: str) -> set[Fact]:
    out: set[Fact] = set()
    for m in _RANGE.finditer(text):
        out.add(("number", f"{_num(m.group(1))}-{_num(m.group(2))}{_unit(text, m.start(), m.end())}"))
    text = _RANGE.sub(lambda m: " " * len(m.group()), text)
    for m in _NUMBER.finditer(text):
        out.add(("number", f"{_num(m.group())}{_unit(text, m.start(), m.end())}"))
    return out


def _num(value: str) -> str:
    return f"{float(value):g}" if "." in value else str(int(value))


def _unit(text: str, start: int, end: int) -> str:
    m = _UNIT.match(text, end)
    if m:
        return " " + _UNITS[m.group(1).lower()]
    before = text[start - 1] if start else ""
    return " " + _CURRENCY_BEFORE[before] if before in _CURRENCY_BEFORE else ""


def _plain(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _listed_stated(listed: str, answer_plain: str, stated: set[Fact], glossary: Iterable[str]) -> bool:
    inside = extract_facts(listed, glossary)
    return _plain(listed) in answer_plain or bool(inside and inside <= stated)


def fact_scores(answer: str, reference: str, prompt: str, glossary: Iterable[str] = (),
                listed: Iterable[str] = ()) -> tuple[float | None, float]:
    """(key-fact recall, invented-fact rate), both 0-100, each text read once. `listed` are the record's
    hand-listed key facts (`meta.key_facts`). Recall is None when there is no fact to look for; an answer
    that states no fact invents none."""
    glossary, listed = tuple(glossary), [f for f in listed if f.strip()]
    wanted, stated = extract_facts(reference, glossary), extract_facts(answer, glossary)
    answer_plain = _plain(answer)
    hits = len(wanted & stated) + sum(_listed_stated(f, answer_plain, stated, glossary) for f in listed)
    total = len(wanted) + len(listed)
    recall = 100.0 * hits / total if total else None
    if not stated:
        return recall, 0.0
    known = wanted | extract_facts(prompt, glossary)
    for fact in listed:
        known |= extract_facts(fact, glossary)
    return recall, 100.0 * len(stated - known) / len(stated)
