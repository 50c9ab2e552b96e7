"""Read data files into `Record`s. Each reader yields records and quarantines bad rows with file:line.

Shapes: OpenAI `messages` JSONL, alpaca (instruction/input/output) JSON or JSONL, and CSV/TSV tables
turned into prompts by a Jinja template. A file that cannot be read at all raises `DataError`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r1tune.config import SourceConfig
from r1tune.data.quarantine import Quarantine
from r1tune.data.records import Message, Record, messages_from_list
from r1tune.errors import DataError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def read_source(source: SourceConfig, quarantine: Quarantine) -> Iterator[Record]:
    """Yield the usable records of one configured source; bad rows go to `quarantine`."""
    path = source.path
    if not path.is_file():
        raise DataError(f"data file not found: {path}", hint="check data.sources[].path (relative to the config)")
    fmt = source.format if source.format != "auto" else _detect_format(path)
    if fmt == "csv":
        yield from _read_table(source, quarantine)
    else:
        for where, row in _json_rows(path, quarantine):
            record = _row_to_record(row, fmt, where, source, quarantine)
            if record is not None:
                yield record


def _detect_format(path: Path) -> str:
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "csv"
    first = next(_json_rows(path, Quarantine()), None)
    if first is None:
        raise DataError(f"{path}: no records found (empty file?)")
    row = first[1]
    if isinstance(row, dict) and "messages" in row:
        return "messages"
    if isinstance(row, dict) and "instruction" in row and "output" in row:
        return "alpaca"
    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
    raise DataError(
        f"{first[0]}: cannot tell the record format from keys {keys}",
        hint="set data.sources[].format to messages, alpaca or csv",
    )


def _json_rows(path: Path, quarantine: Quarantine) -> Iterator[tuple[str, Any]]:
    """Rows of a JSON array file or a JSONL file, each with its 'file:line' (JSON arrays: 'file:#index')."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json data file must hold a list of records")
        for i, row in enumerate(data):
            yield f"{path}:#{i}", row
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as err:
            quarantine.add(where, "read", f"invalid JSON ({err.msg} at column {err.colno})", line[:500])


def _row_to_record(
    row: Any, fmt: str, where: str, source: SourceConfig, quarantine: Quarantine
) -> Record | None:
    try:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if fmt == "messages":
            messages = messages_from_list(row.get("messages"), where)
        else:
            messages = _alpaca_messages(row, where)
    except DataError as err:
        quarantine.add(where, "read", err.message, row)
        return None
    if source.system and messages[0].role != "system":
        messages.insert(0, Message("system", source.system))
    meta = {k: v for k, v in row.items() if k in ("label", "category", "meta")}
    return Record(messages=messages, source=where, meta=meta)


def _alpaca_messages(row: dict, where: str) -> list[Message]:
    for key in ("instruction", "output"):
        if not isinstance(row.get(key), str):
            raise DataError(f"{where}: alpaca field `{key}` is missing or not a string")
    prompt = row["instruction"]
    if isinstance(row.get("input"), str) and row["input"].strip():
        prompt = f"{prompt}\n\n{row['input']}"
    messages: list[Message] = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append(Message("system", row["system"]))
    for turn in row.get("history") or []:
        if isinstance(turn, list) and len(turn) == 2:
            messages += [Message("user", str(turn[0])), Message("assistant", str(turn[1]))]
    messages += [Message("user", prompt), Message("assistant", row["output"])]
    return messages_from_list([m.to_dict() for m in messages], where)


def _read_table(source: SourceConfig, quarantine: Quarantine) -> Iterator[Record]:
    import jinja2

    if not source.prompt_template or not source.target_column:
        raise DataError(
            f"{source.path}: a CSV/TSV source needs prompt_template and target_column",
            hint='e.g. prompt_template: "Describe {{name}}", target_column: description',
        )
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        template = env.from_string(source.prompt_template)
    except jinja2.TemplateSyntaxError as err:
        raise DataError(f"data.sources[].prompt_template: invalid Jinja at line {err.lineno}: {err.message}") from None
    delimiter = TABLE_SUFFIXES.get(source.path.suffix.lower(), ",")
    with source.path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames or []
        if source.target_column not in header:
            raise DataError(
                f"{source.path}: target_column {source.target_column!r} is not a column; columns: {header}"
            )
        for row in reader:
            where = f"{source.path}:{reader.line_num}"
            record = _table_row_to_record(row, header, template, source, where, quarantine)
            if record is not None:
                yield record


def _table_row_to_record(row, header, template, source, where, quarantine) -> Record | None:
    import jinja2

    if None in row or any(row.get(col) is None for col in header):
        quarantine.add(where, "read", f"row has a different number of fields than the header ({len(header)})", row)
        return None
    answer = (row.get(source.target_column) or "").strip()
    if not answer:
        quarantine.add(where, "read", f"empty answer in column {source.target_column!r}", row)
        return None
    try:
        prompt = template.render(**row).strip()
    except jinja2.UndefinedError as err:
        quarantine.add(where, "read", f"prompt_template: {err.message}; columns: {header}", row)
        return None
    messages = [Message("user", prompt), Message("assistant", answer)]
    if source.system:
        messages.insert(0, Message("system", source.system))
    meta = {k: row[k] for k in ("category", "label", "lang") if k in row}
    return Record(messages=messages, source=where, meta=meta)
