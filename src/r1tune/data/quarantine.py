"""Rows that could not be used, each with where it came from, which stage rejected it and why.

Nothing is dropped silently: every reader and filter that rejects a row adds it here, and `prepare`
writes `quarantine.jsonl` and counts per stage and reason into the data report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Rejected:
    source: str  # "file:line"
    stage: str  # "read", "validate", "dedup", ...
    reason: str
    row: Any = None


@dataclass
class Quarantine:
    items: list[Rejected] = field(default_factory=list)

    def add(self, source: str, stage: str, reason: str, row: Any = None) -> None:
        self.items.append(Rejected(source, stage, reason, row))

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """Rejections per stage."""
        return dict(Counter(item.stage for item in self.items))

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for item in self.items:
                fh.write(json.dumps(asdict(item), ensure_ascii=False, default=str) + "\n")
