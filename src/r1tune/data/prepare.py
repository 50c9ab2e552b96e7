"""`prepare`: read the configured sources, drop exact duplicates, split train/val/test, write it all down.

Output (in the run's `data/` folder): `train.jsonl`, `val.jsonl`, `test.jsonl`, `quarantine.jsonl` and
`data_report.json` with the funnel (read → usable → deduplicated → split) and sha256 of every input and
output file, so a run can prove which data it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tune.config import DataConfig, SourceConfig
from r1tune.data.quarantine import Quarantine
from r1tune.data.readers import read_source
from r1tune.data.records import Record, read_jsonl, write_jsonl
from r1tune.errors import DataError

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class PreparedData:
    train: list[Record]
    val: list[Record]
    test: list[Record]
    report: dict[str, Any]
    folder: Path


def prepare(cfg: DataConfig, out_dir: Path, seed: int) -> PreparedData:
    """Run the data stage for one config section and write its outputs to `out_dir`."""
    quarantine = Quarantine()
    records, read_counts = _read_all(cfg.sources, quarantine, cfg.max_records)
    held_out, _ = _read_all(cfg.test_sources, quarantine, None)
    records = _drop_exact_duplicates(records, quarantine)
    if not records:
        _raise_nothing_usable(cfg.sources, quarantine)
    test_ratio = 0.0 if held_out else cfg.test_ratio
    train, val, test = split_records(records, cfg.val_ratio, test_ratio, seed)
    if held_out:
        test = _drop_overlap(held_out, records, quarantine)
    if not train:
        raise DataError(f"only {len(records)} usable record(s): nothing left for training after the split")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, split in zip(SPLITS, (train, val, test), strict=True):
        write_jsonl(split, out_dir / f"{name}.jsonl")
    quarantine.write(out_dir / "quarantine.jsonl")
    report = {
        "funnel": {
            "read": sum(read_counts.values()) + quarantine.counts().get("read", 0),
            "rejected": quarantine.counts(),
            "usable": len(records),
            **{name: len(split) for name, split in zip(SPLITS, (train, val, test), strict=True)},
        },
        "sources": {str(p): {"records": n, "sha256": file_sha256(p)} for p, n in read_counts.items()},
        "splits": {name: file_sha256(out_dir / f"{name}.jsonl") for name in SPLITS},
        "seed": seed,
        "quarantine_examples": [item.source + ": " + item.reason for item in quarantine.items[:10]],
    }
    (out_dir / "data_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    for item in quarantine.items[:5]:
        log.warning("quarantined %s (%s): %s", item.source, item.stage, item.reason)
    return PreparedData(train, val, test, report, out_dir)


def load_prepared(folder: Path) -> PreparedData:
    """Reload the splits a previous `prepare` wrote."""
    if not (folder / "train.jsonl").is_file():
        raise DataError(f"{folder} holds no prepared data (train.jsonl missing)", hint="run `r1tune prepare` first")
    splits = {name: list(read_jsonl(folder / f"{name}.jsonl")) for name in SPLITS}
    report_path = folder / "data_report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    return PreparedData(splits["train"], splits["val"], splits["test"], report, folder)


def split_records(
    records: list[Record], val_ratio: float, test_ratio: float, seed: int
) -> tuple[list[Record], list[Record], list[Record]]:
    """Deterministic shuffle-and-cut by seed; a non-zero ratio always yields at least one record."""
    shuffled = sorted(records, key=lambda r: r.id)  # independent of input order
    random.Random(seed).shuffle(shuffled)
    n = len(shuffled)
    n_test = max(1, round(n * test_ratio)) if test_ratio > 0 and n > 2 else 0
    n_val = max(1, round(n * val_ratio)) if val_ratio > 0 and n - n_test > 1 else 0
    return shuffled[n_test + n_val :], shuffled[n_test : n_test + n_val], shuffled[:n_test]


def _read_all(
    sources: list[SourceConfig], quarantine: Quarantine, limit: int | None
) -> tuple[list[Record], dict[Path, int]]:
    records: list[Record] = []
    counts: dict[Path, int] = {}
    for source in sources:
        before = len(records)
        for record in read_source(source, quarantine):
            if limit is not None and len(records) >= limit:
                break
            records.append(record)
        counts[source.path] = len(records) - before
    return records, counts


def _drop_exact_duplicates(records: list[Record], quarantine: Quarantine) -> list[Record]:
    seen: dict[str, str] = {}
    kept = []
    for record in records:
        key = record.content_hash()
        if key in seen:
            quarantine.add(record.source, "dedup", f"exact duplicate of {seen[key]}")
            continue
        seen[key] = record.source
        kept.append(record)
    return kept


def _drop_overlap(held_out: list[Record], train_pool: list[Record], quarantine: Quarantine) -> list[Record]:
    """A held-out record that also appears in the training pool would leak the answer: quarantine it."""
    pool = {r.content_hash(): r.source for r in train_pool}
    kept = []
    for record in held_out:
        if record.content_hash() in pool:
            quarantine.add(record.source, "dedup", f"test record also in training data ({pool[record.content_hash()]})")
        else:
            kept.append(record)
    return kept


def _raise_nothing_usable(sources: list[SourceConfig], quarantine: Quarantine) -> None:
    examples = "; ".join(f"{i.source}: {i.reason}" for i in quarantine.items[:3])
    names = ", ".join(str(s.path) for s in sources)
    raise DataError(f"no usable records in {names}" + (f" (e.g. {examples})" if examples else " (empty files?)"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
