"""The detection driver: cheap prefilters choose the finders, overlapping candidates are resolved."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from r1tune.data.pii.addresses import _find_en_address, _find_zh_address
from r1tune.data.pii.free_names import find_zh_person_free
from r1tune.data.pii.names import _find_en_person, _find_zh_person
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
from r1tune.data.pii.spans import NAME_FINDERS, PII_TYPES, NameFinder, PersonScope, PiiSpan
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


def _zh_name_finder(names: NameFinder) -> _Finder | None:
    """The cue-free Chinese name finder of a `names` setting (cue-based finding always runs)."""
    if names == "cues":
        return None
    if names == "thulac":
        from r1tune.data.pii.learned_names import find_zh_person_thulac

        return find_zh_person_thulac
    return find_zh_person_free


def _applicable_finders(text: str, types: frozenset[str], free_names: _Finder | None) -> list[_Finder]:
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
        ("IP", digit and (text.count(".") >= 3 or ":" in text), _find_ip),  # IPv4 has three dots
        ("URL_SECRET", "=" in text or "://" in text, _find_url_secret),
        ("PERSON", cjk, _find_zh_person),
        ("PERSON", cjk and free_names is not None, free_names),
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


def _extend_names(cands: list[Cand]) -> list[Cand]:
    """A cue-based name cut short by jieba ("客户许霞|雪") takes the end of a longer cue-free name found at
    the same start; its score (the cue's) is kept."""
    longest: dict[int, int] = {}
    for s, e, t, _ in cands:
        if t == "PERSON" and e > longest.get(s, -1):
            longest[s] = e
    return [(s, longest[s], t, sc) if t == "PERSON" and longest[s] - s <= 4 else (s, e, t, sc)
            for s, e, t, sc in cands]


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

    def __init__(self, types: Iterable[str] | None = None, names: NameFinder = "free",
                 person_scope: PersonScope = "all") -> None:
        """`types` limits detection (unknown names fail fast); `names` chooses how Chinese names without a cue
        word are found (`cues`: not at all, `free`: dictionary scan, `thulac`: learned tagger);
        `person_scope="private"` keeps well-known public and fictional names."""
        if names not in NAME_FINDERS:
            raise R1TuneError(f"unknown name finder {names!r}", hint=f"use one of {', '.join(NAME_FINDERS)}")
        self.types = _check_types(types)
        self.free_names = _zh_name_finder(names)
        self.person_scope = person_scope

    def detect(self, text: str) -> list[PiiSpan]:
        """All PII spans in `text`, non-overlapping and sorted by position."""
        if not text:
            return []
        norm = _to_halfwidth(text)
        cands: list[Cand] = []
        for finder in _applicable_finders(norm, self.types, self.free_names):
            cands.extend(finder(norm))
        spans = [PiiSpan(s, e, t, text[s:e], sc) for s, e, t, sc in _resolve(_extend_names(cands))]
        if self.person_scope == "private":
            from r1tune.data.pii.public_names import is_public_name

            spans = [sp for sp in spans if sp.type != "PERSON" or not is_public_name(sp.text)]
        return spans


@lru_cache(maxsize=64)
def _cached_detector(types: frozenset[str] | None, names: NameFinder, scope: PersonScope) -> PiiDetector:
    """One detector per setting, so repeated `detect_pii` calls do no setup work."""
    return PiiDetector(types, names, scope)


def detect_pii(text: str, types: Iterable[str] | None = None, *, names: NameFinder = "free",
               person_scope: PersonScope = "all") -> list[PiiSpan]:
    """Find PII in `text`; `types` limits the search (e.g. skip PERSON/ADDRESS for speed or recall trade-offs)."""
    key = None if types is None else frozenset(types)
    return _cached_detector(key, names, person_scope).detect(text)
