"""Masking records and whole JSON/JSONL/text files line by line, with errors that name file and line."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from r1tune.data.pii.masker import PiiMasker
from r1tune.data.pii.spans import PII_TYPES
from r1tune.data.records import Message, Record
from r1tune.errors import DataError


def _mask_message(msg: Message, masker: PiiMasker) -> Message:
    """Mask the visible answer and the chain of thought: R1 traces repeat PII from the prompt."""
    content, _ = masker.mask(msg.content)
    reasoning = masker.mask(msg.reasoning)[0] if msg.reasoning else msg.reasoning
    return replace(msg, content=content, reasoning=reasoning)


def mask_record(record: Record, masker: PiiMasker) -> Record:
    """Masked copy of `record` (content and reasoning of every message; `meta` and `source` are kept as is).

    An auto-generated id is recomputed, because it is a hash of the unmasked text; a user-given id is kept.
    """
    messages = [_mask_message(m, masker) for m in record.messages]
    auto_id = record.id == record.content_hash()[:16]
    return Record(messages=messages, source=record.source, meta=dict(record.meta), id="" if auto_id else record.id)


def _mask_json_messages(messages: Any, masker: PiiMasker) -> None:
    """Mask content/reasoning of an OpenAI-style message list in place (unknown keys are kept).

    `content` may also be a list of parts ({"type": "text", "text": ...}); their `text` is masked.
    """
    if not isinstance(messages, list):
        return
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        for key in ("content", "reasoning", "reasoning_content"):
            if isinstance(msg.get(key), str):
                msg[key] = masker.mask(msg[key])[0]
        for part in msg["content"] if isinstance(msg.get("content"), list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = masker.mask(part["text"])[0]


def _mask_json_object(obj: dict[str, Any], masker: PiiMasker, fields: list[str] | None) -> None:
    """Mask the chosen top-level fields; by default message texts of records, else every string field."""
    if fields is None:
        fields = ["messages"] if "messages" in obj else [k for k, v in obj.items() if isinstance(v, str)]
    for name in fields:
        value = obj.get(name)
        if name == "messages":
            _mask_json_messages(value, masker)
        elif isinstance(value, str):
            obj[name] = masker.mask(value)[0]


def _mask_line(line: str, masker: PiiMasker, fields: list[str] | None, jsonl: bool, where: str) -> str:
    """One output line (without newline) for one input line."""
    if not jsonl:
        return masker.mask(line)[0]
    if not line.strip():
        return line
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: invalid JSON ({err.msg} at column {err.colno})",
                        hint="fix or remove the line; every line of a .jsonl file must be one JSON object") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    _mask_json_object(obj, masker, fields)
    return json.dumps(obj, ensure_ascii=False)


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without newline); undecodable bytes become a DataError naming file:line."""
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 ({err.reason})",
                                hint="re-encode the file as UTF-8") from None


def mask_file(in_path: Path, out_path: Path, masker: PiiMasker, fields: list[str] | None = None) -> dict[str, Any]:
    """Mask a .jsonl (given fields, or record messages) or any text file line by line.

    The output is written to a temporary file and moved into place only on success, so a bad line never
    leaves a half-masked file behind. Returns {"lines", "masked", "by_type"} for this file.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    jsonl = in_path.suffix.lower() == ".jsonl"
    before = Counter(masker.counts)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".tmp{os.getpid()}")
    lines = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            for lineno, line in _read_lines(in_path):
                out.write(_mask_line(line, masker, fields, jsonl, f"{in_path}:{lineno}") + "\n")
                lines += 1
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    by_type = {t: masker.counts[t] - before[t] for t in PII_TYPES if masker.counts[t] - before[t]}
    return {"lines": lines, "masked": sum(by_type.values()), "by_type": by_type}
