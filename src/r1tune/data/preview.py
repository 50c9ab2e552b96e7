"""The first records of a project as training will see them, without preparing the whole data set: read with
the configured chunking, then cleaned, filtered and PII-masked record by record exactly as `prepare` does.
Corpus-level steps (deduplication, the split) need every record and are not applied; a record they would
drop can therefore still appear here."""

from __future__ import annotations

from collections.abc import Callable

from r1tune.config import DataConfig
from r1tune.data.prepare import record_cleaner
from r1tune.data.quarantine import Quarantine
from r1tune.data.readers import read_source
from r1tune.data.records import Record


def training_view(cfg: DataConfig, n: int, count_tokens: Callable[[str], int] | None = None
                  ) -> tuple[list[Record], list[str]]:
    """(up to `n` records as training sees them, the reasons the records skipped on the way were dropped)."""
    cleaner = record_cleaner(cfg)
    kept: list[Record] = []
    dropped: list[str] = []
    quarantine = Quarantine()  # what the readers reject (malformed rows, empty answers)
    records = (r for source in cfg.sources for r in read_source(source, quarantine, count_tokens, cfg.chunking))
    for record in records:
        result = cleaner.clean(record.to_dict())
        if result.record is None:
            dropped.append(f"{record.source}: {', '.join(result.issues) or 'filtered'}")
            continue
        kept.append(Record.from_dict(result.record, record.source))
        if len(kept) >= n:
            break
    rejected = [f"{item.source}: {item.reason}" for item in quarantine.items if item.action == "rejected"]
    return kept, rejected + dropped
