"""Rows that could not be used, or were changed, each with where it came from, which stage and why.

Nothing is dropped silently: every reader and filter that rejects a row adds it here, and `prepare`
writes `quarantine.jsonl` and counts per stage and reason into the data report. Cleaning steps that
change a row (HTML stripped, PII masked, script converted) are recorded too, with `action: "changed"`.

A `Quarantine` keeps its items in memory (readers, tests) or streams them to a file (`prepare` on
millions of rows), keeping only counts and the first examples.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

MAX_ROW_CHARS = 2000
_NUMBERS = re.compile(r"\d+")
_QUOTED = re.compile(r"'[^']*'")
_WHERE_PREFIX = re.compile(r"^\S*:#?\d+(?:#\d+)?: ")


@dataclass
class Rejected:
    source: str  # "file:line"
    stage: str  # "read", "filter", "dedup", "near_dedup", "pii", ...
    reason: str
    row: Any = None
    action: str = "rejected"  # or "changed" (kept, altered) or "flagged" (kept as is, worth a look)


@dataclass
class Quarantine:
    items: list[Rejected] = field(default_factory=list)
    sink: IO[str] | None = None  # when set, items are written here instead of kept
    keep_examples: int = 20
    _rejected: Counter = field(default_factory=Counter)
    _changed: Counter = field(default_factory=Counter)
    _flagged: Counter = field(default_factory=Counter)
    _reasons: Counter = field(default_factory=Counter)
    examples: list[Rejected] = field(default_factory=list)

    def add(self, source: str, stage: str, reason: str, row: Any = None, action: str = "rejected") -> None:
        item = Rejected(source, stage, reason, _trim(row), action)
        {"rejected": self._rejected, "flagged": self._flagged}.get(action, self._changed)[stage] += 1
        self._reasons[(action, stage, reason_kind(reason))] += 1
        if len(self.examples) < self.keep_examples and action == "rejected":
            self.examples.append(item)
        if self.sink is not None:
            self.sink.write(json.dumps(asdict(item), ensure_ascii=False, default=str) + "\n")
        else:
            self.items.append(item)

    def __len__(self) -> int:
        return sum(self._rejected.values())

    def __bool__(self) -> bool:
        return bool(self._rejected)

    def counts(self) -> dict[str, int]:
        """Rejections per stage."""
        return dict(self._rejected)

    def changed_counts(self) -> dict[str, int]:
        """Rows changed (kept) per stage."""
        return dict(self._changed)

    def flagged_counts(self) -> dict[str, int]:
        """Rows kept as they are but flagged (placeholders, preference data) per stage."""
        return dict(self._flagged)

    def reason_counts(self) -> dict[str, dict[str, int]]:
        """{"rejected:stage" | "changed:stage": {reason kind: n}} — reasons with their numbers blanked."""
        out: dict[str, dict[str, int]] = {}
        for (action, stage, kind), n in self._reasons.most_common():
            out.setdefault(f"{action}:{stage}", {})[kind] = n
        return out

    def write(self, path: Path) -> None:
        """Write the in-memory items (streaming quarantines have already written theirs)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for item in self.items:
                fh.write(json.dumps(asdict(item), ensure_ascii=False, default=str) + "\n")


def reason_kind(reason: str) -> str:
    """A reason without its specifics, for counting: 'exact duplicate of f.jsonl:12' -> 'exact duplicate of'."""
    head = _WHERE_PREFIX.sub("", reason).split(" (")[0].split(": ")[0].split(";")[0]
    head = head.split(" of ")[0] + (" of" if " of " in head else "")
    return _NUMBERS.sub("N", _QUOTED.sub("…", head)).strip()[:80]


def _trim(row: Any) -> Any:
    """Rows are kept for inspection; a 1 MB cell is cut so the quarantine stays readable."""
    if isinstance(row, str) and len(row) > MAX_ROW_CHARS:
        return row[:MAX_ROW_CHARS] + "…"
    return row
