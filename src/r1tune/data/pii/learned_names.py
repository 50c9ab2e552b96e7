"""Chinese names found by a learned tagger: THULAC's segmenter and part-of-speech model (its `np` tag is a
person name), which installs with its weights from the package registry and runs offline.

Measured against the dictionary scan of `free_names` in `make bench-pii`: the tagger generalises to names
outside the given-name table but ran at 27 records/s against 7,268 for the scan, so it is an option
(`pii.names: thulac`, extra `r1tune[names]`), not the default.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from r1tune.data.pii.text import Cand
from r1tune.errors import R1TuneError

_WEEKDAYS = frozenset("周一 周二 周三 周四 周五 周六 周日 周末".split())


@lru_cache(maxsize=1)
def _tagger() -> Any:
    try:
        import thulac
    except ImportError:
        raise R1TuneError("pii.names: thulac needs the thulac package",
                          hint="pip install 'r1tune[names]' (or thulac==0.2.2), or use pii.names: free") from None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Model loaded succeed"
        return thulac.thulac()


def find_zh_person_thulac(text: str) -> Iterator[Cand]:
    """Every `np` token of two to four CJK characters (one character is a surname alone: 谭)."""
    pos = 0
    for word, tag in _tagger().cut(text):
        start = text.find(word, pos)
        if start < 0:
            continue
        pos = start + len(word)
        if tag == "np" and 2 <= len(word) <= 4 and word not in _WEEKDAYS and all("\u4e00" <= c <= "\u9fff" for c in word):
            yield start, pos, "PERSON", 0.6
