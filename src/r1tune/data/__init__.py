"""Data stage: read messy sources into records, clean, mask PII, deduplicate, split, and explain every drop.

Public API: `prepare` / `load_prepared` (the stage), `read_source` (one configured file), `split_records`,
the record types, `Quarantine`. PII masking lives in `r1tune.data.pii`; the engine's parts in `clean`,
`dedup`, `chunking`, `split`, `readers`, `shapes`, `files` and `documents`.
"""

from r1tune.data.prepare import PreparedData, load_prepared, prepare, run_data_pipeline, split_records
from r1tune.data.quarantine import Quarantine, Rejected
from r1tune.data.readers import read_source
from r1tune.data.records import Message, Record, read_jsonl, write_jsonl

__all__ = [
    "Message", "PreparedData", "Quarantine", "Record", "Rejected", "load_prepared", "prepare", "read_jsonl",
    "read_source", "run_data_pipeline", "split_records", "write_jsonl",
]
