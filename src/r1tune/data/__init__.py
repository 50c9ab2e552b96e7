"""Data stage: read sources into records, quarantine bad rows, split, and write the prepared sets."""

from r1tune.data.prepare import PreparedData, load_prepared, prepare, split_records
from r1tune.data.quarantine import Quarantine, Rejected
from r1tune.data.readers import read_source
from r1tune.data.records import Message, Record, read_jsonl, write_jsonl

__all__ = [
    "Message", "PreparedData", "Quarantine", "Record", "Rejected", "load_prepared", "prepare",
    "read_jsonl", "read_source", "split_records", "write_jsonl",
]
