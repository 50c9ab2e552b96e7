"""The detection driver: cheap prefilters choose the finders, overlapping candidates are resolved."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from r1tune.data.pii.addresses import _find_en_address, _find_zh_address
from r1tune.data.pii.names import _find_en_person, _find_zh_person, _find_zh_person_scan
from r1tune.data.pii.numbers import (
    _find_bank_card,
    _find_cn_id,
    _find_email,
    _find_ip,
    _find_passport,
    _find_phone,
    _find_url_secret,
    _find_uscc,
)
from r1tune.data.pii.spans import PII_TYPES, PiiSpan
from r1tune.data.pii.text import _HAS_CJK, _HAS_DIGIT, Cand, _to_halfwidth
from r1tune.errors import R1TuneError

_Finder = Callable[[str], Iterator[Cand]]
_HAS_LATIN_UPPER = re.compile(r"[A-Z]")
_TYPE_PRIORITY = {t: i for i, t in enumerate(PII_TYPES)}


_DIGIT_RUN = re.compile(r"\d{3,}")


def _digit_profile(text: str) -> tuple[int, int, int]:
    """(longest digit run, runs of >= 3 digits, runs of exactly 4): one scan decides which number finders run."""
    runs = [len(r) for r in _DIGIT_RUN.findall(text)]
    return max(runs, default=0), len(runs), runs.count(4)


def _applicable_finders(text: str, types: frozenset[str], zh_name_scan: bool) -> list[_Finder]:
    """Cheap prefilters: only run the detectors whose trigger characters occur in the text."""
    digit, cjk = bool(_HAS_DIGIT.search(text)), bool(_HAS_CJK.search(text))
    upper = bool(_HAS_LATIN_UPPER.search(text))
    longest, n_runs, n_fours = _digit_profile(text) if digit else (0, 0, 0)
    plan: list[tuple[str, bool, _Finder]] = [
        ("CN_ID", longest >= 6, _find_cn_id),
        ("PHONE", longest >= 7 or n_runs >= 2, _find_phone),
        ("BANK_CARD", longest >= 16 or n_fours >= 3 or (longest >= 6 and n_runs >= 2), _find_bank_card),
        ("USCC", longest >= 6, _find_uscc),
        ("PASSPORT", longest >= 6, _find_passport),
        ("EMAIL", "@" in text, _find_email),
        ("IP", digit and ("." in text or ":" in text), _find_ip),
        ("URL_SECRET", "=" in text or "://" in text, _find_url_secret),
        ("PERSON", cjk, _find_zh_person_scan if zh_name_scan else _find_zh_person),
        ("PERSON", zh_name_scan and cjk, _find_zh_person),
        ("PERSON", upper, _find_en_person),
        ("ADDRESS", cjk, _find_zh_address),
        ("ADDRESS", digit and upper, _find_en_address),
    ]
    return [f for t, go, f in plan if go and t in types]


def _resolve(cands: list[Cand]) -> list[Cand]:
    """Keep the best non-overlapping candidates: higher score, then longer, then earlier type in PII_TYPES."""
    ranked = sorted(cands, key=lambda c: (-c[3], -(c[1] - c[0]), _TYPE_PRIORITY[c[2]], c[0]))
    starts: list[int] = []
    taken: list[Cand] = []  # kept sorted by start; neighbours found by bisection (long texts have 1000s of spans)
    for c in ranked:
        i = bisect.bisect_right(starts, c[0])
        if c[1] > c[0] and (i == 0 or taken[i - 1][1] <= c[0]) and (i == len(taken) or taken[i][0] >= c[1]):
            starts.insert(i, c[0])
            taken.insert(i, c)
    return taken


def _check_types(types: Iterable[str] | None) -> frozenset[str]:
    """Validate a user-supplied type filter early, with the allowed names in the message."""
    if types is None:
        return frozenset(PII_TYPES)
    chosen = frozenset(types)
    unknown = chosen - set(PII_TYPES)
    if unknown:
        raise R1TuneError(f"unknown PII type(s): {', '.join(sorted(unknown))}", hint=f"use any of {', '.join(PII_TYPES)}")
    return chosen


class PiiDetector:
    """Reusable detector with a fixed type filter; `detect_pii` wraps a cached instance of this."""

    def __init__(self, types: Iterable[str] | None = None, zh_name_scan: bool = False) -> None:
        """`types` limits detection (unknown names fail fast); `zh_name_scan` adds cue-less jieba name scanning."""
        self.types = _check_types(types)
        self.zh_name_scan = zh_name_scan

    def detect(self, text: str) -> list[PiiSpan]:
        """All PII spans in `text`, non-overlapping and sorted by position."""
        if not text:
            return []
        norm = _to_halfwidth(text)
        cands: list[Cand] = []
        for finder in _applicable_finders(norm, self.types, self.zh_name_scan):
            cands.extend(finder(norm))
        return [PiiSpan(s, e, t, text[s:e], sc) for s, e, t, sc in _resolve(cands)]


@lru_cache(maxsize=64)
def _cached_detector(types: frozenset[str] | None, zh_name_scan: bool) -> PiiDetector:
    """One detector per type filter, so repeated `detect_pii` calls do no setup work."""
    return PiiDetector(types, zh_name_scan)


def detect_pii(text: str, types: Iterable[str] | None = None, *, zh_name_scan: bool = False) -> list[PiiSpan]:
    """Find PII in `text`; `types` limits the search (e.g. skip PERSON/ADDRESS for speed or recall trade-offs)."""
    key = None if types is None else frozenset(types)
    return _cached_detector(key, zh_name_scan).detect(text)
