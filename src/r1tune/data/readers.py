"""Read one configured source into `Record`s; bad rows go to the quarantine with file:line and reason.

Files: JSON, JSONL, CSV/TSV (encoding detected), XLSX, Parquet, and documents (TXT, Markdown, PDF, DOCX,
HTML). Shapes: see `shapes.py`. LLaMA-Factory datasets load as they are: point `path` at a file next to
its `dataset_info.json` (the entry's formatting, columns and tags are applied), or at the
`dataset_info.json` itself with `dataset: <name>`. A file that cannot be read at all raises `DataError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1tune.config import ChunkConfig, SourceConfig
from r1tune.data.chunking import TokenCounter, approx_tokens, chunk_document
from r1tune.data.documents import DOCUMENT_SUFFIXES, Document, load_document, text_document
from r1tune.data.files import ROW_SUFFIXES, iter_rows, table_header
from r1tune.data.quarantine import Quarantine
from r1tune.data.records import Message, Record
from r1tune.data.shapes import ShapeContext, detect_shape, to_records
from r1tune.errors import DataError

DATASET_INFO = "dataset_info.json"
TEXT_KEYS = ("text", "content")


@dataclass
class _Plan:
    """What to read and how, after dataset_info.json and auto-detection are resolved."""

    path: Path
    shape: str | None
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def read_source(source: SourceConfig, quarantine: Quarantine, count_tokens: TokenCounter | None = None,
                chunking: ChunkConfig | None = None) -> Iterator[Record]:
    """Yield the usable records of one configured source; bad rows go to `quarantine`.

    `count_tokens` (the model tokenizer's length function) sizes document chunks; without it a
    character-based estimate is used.
    """
    plan = _plan(source)
    if plan.path.stat().st_size == 0:
        raise DataError(f"{plan.path}: no records found (empty file)")
    chunking = chunking or ChunkConfig()
    count = count_tokens or approx_tokens
    if plan.path.suffix.lower() in DOCUMENT_SUFFIXES:
        yield from _document_records(load_document(plan.path, source.encoding), source, count, chunking)
        return
    rows = iter_rows(plan.path, quarantine, source.encoding, source.sheet)
    first = next(rows, None)
    if first is None:
        if quarantine:
            return  # every row was broken; the quarantine says why
        raise DataError(f"{plan.path}: no records found (empty file?)")
    shape = plan.shape or _detect(plan.path, first, source)
    ctx = _context(source, plan, shape)
    for where, row in _chain(first, rows):
        try:
            if shape == "document":
                yield from _document_row_records(row, where, source, plan, count, chunking)
            else:
                yield from to_records(shape, row, where, ctx)
        except DataError as err:
            quarantine.add(where, "read", err.message, row)


def label_studio_tasks(source: SourceConfig) -> list[Any] | None:
    """The raw tasks of a Label Studio source (for agreement statistics), or None for any other shape."""
    plan = _plan(source)
    if plan.shape not in (None, "label_studio") or plan.path.suffix.lower() not in (".json", ".jsonl"):
        return None
    rows = (row for _, row in iter_rows(plan.path, Quarantine(), source.encoding, source.sheet))
    first = next(rows, None)  # one row decides: a million-row JSONL of another shape is not read again
    if first is None or (plan.shape is None and detect_shape(first) != "label_studio"):
        return None
    return [first, *rows]


def _chain(first: tuple[str, Any], rest: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    yield first
    yield from rest


# ---------------------------------------------------------------------------------------------------------
# where to read from and which shape


def _plan(source: SourceConfig) -> _Plan:
    path = source.path
    if path.is_dir() or path.name == DATASET_INFO or source.dataset:
        return _plan_from_dataset_info(source)
    if not path.is_file():
        raise DataError(f"data file not found: {path}", hint="check data.sources[].path (relative to the config)")
    shape = {"auto": None, "csv": "table"}.get(source.format, source.format)
    if shape is None and (path.parent / DATASET_INFO).is_file():
        entry = _dataset_info_entry_for(path)
        if entry is not None:
            return _plan_from_entry(entry, path, source)
    return _Plan(path, shape, dict(source.columns), dict(source.tags))


def _load_dataset_info(info_path: Path) -> dict[str, Any]:
    try:
        info = json.loads(info_path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"{info_path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(info, dict):
        raise DataError(f"{info_path}: expected an object of dataset entries")
    return info


def _dataset_info_entry_for(path: Path) -> dict[str, Any] | None:
    info = _load_dataset_info(path.parent / DATASET_INFO)
    matches = [e for e in info.values() if isinstance(e, dict) and e.get("file_name") == path.name]
    return matches[0] if matches else None


def _plan_from_dataset_info(source: SourceConfig) -> _Plan:
    info_path = source.path / DATASET_INFO if source.path.is_dir() else source.path
    if not info_path.is_file():
        raise DataError(f"data file not found: {info_path}", hint="`dataset` needs a LLaMA-Factory dataset_info.json")
    info = _load_dataset_info(info_path)
    if not source.dataset:
        raise DataError(f"{info_path}: say which entry to read with data.sources[].dataset",
                        hint=f"entries with local files: {_local_entries(info)}")
    entry = info.get(source.dataset)
    if not isinstance(entry, dict):
        raise DataError(f"{info_path}: no dataset {source.dataset!r}", hint=f"local entries: {_local_entries(info)}")
    if "file_name" not in entry:
        raise DataError(f"{info_path}: dataset {source.dataset!r} lives on a hub ({sorted(entry)}), not in a file",
                        hint="download it on a connected machine and point `path` at the file")
    path = info_path.parent / entry["file_name"]
    if not path.is_file():
        raise DataError(f"data file not found: {path} (file_name of {source.dataset!r} in {info_path})")
    return _plan_from_entry(entry, path, source)


def _local_entries(info: dict[str, Any]) -> list[str]:
    return [name for name, e in info.items() if isinstance(e, dict) and "file_name" in e][:20]


def _plan_from_entry(entry: dict[str, Any], path: Path, source: SourceConfig) -> _Plan:
    """LLaMA-Factory semantics: formatting alpaca|sharegpt, `ranking` pairs, prompt-only = pre-training text."""
    columns = {**entry.get("columns", {}), **source.columns}
    tags = {**entry.get("tags", {}), **source.tags}
    formatting = entry.get("formatting", "alpaca")
    if source.format not in ("auto",):
        shape = {"csv": "table"}.get(source.format, source.format)
    elif entry.get("ranking"):
        shape = "preference"
    elif formatting == "alpaca" and set(columns) == {"prompt"}:
        shape, columns = "document", {"text": columns["prompt"]}
    else:
        shape = formatting if formatting in ("alpaca", "sharegpt") else None
    return _Plan(path, shape, columns, tags)


def _detect(path: Path, first: tuple[str, Any], source: SourceConfig) -> str:
    where, row = first
    is_table_file = path.suffix.lower() in ROW_SUFFIXES - {".json", ".jsonl", ".ndjson"}
    if source.prompt_template and is_table_file:
        return "table"
    shape = detect_shape(row)
    if shape is not None:
        return shape
    if source.prompt_template and source.target_column:
        return "table"  # JSON rows rendered through a template like table rows
    if is_table_file:
        raise DataError(f"{path}: a CSV/TSV source needs prompt_template and target_column",
                        hint='e.g. prompt_template: "Describe {{name}}", target_column: description')
    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
    raise DataError(
        f"{where}: cannot tell the record format from keys {keys}",
        hint="set data.sources[].format (messages, alpaca, sharegpt, preference, dialogue, label_studio, "
             "table, document) and, if your field names differ, data.sources[].columns",
    )


def _context(source: SourceConfig, plan: _Plan, shape: str) -> ShapeContext:
    ctx = ShapeContext(columns=plan.columns, tags=plan.tags, system=source.system,
                       label_column=source.label_column, target_column=source.target_column,
                       min_agreement=source.min_agreement)
    if shape == "table":
        if not source.prompt_template or not source.target_column:
            raise DataError(
                f"{plan.path}: a CSV/TSV source needs prompt_template and target_column",
                hint='e.g. prompt_template: "Describe {{name}}", target_column: description',
            )
        header = table_header(plan.path, source.encoding, source.sheet)
        if header and source.target_column not in header:
            raise DataError(f"{plan.path}: target_column {source.target_column!r} is not a column; columns: {header}")
        ctx.prompt = _template(source.prompt_template, header)
    elif shape == "label_studio" and source.prompt_template:
        ctx.prompt = _template(source.prompt_template, [])
    return ctx


def _template(text: str, header: list[str]) -> Callable[[dict[str, Any]], str]:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    try:
        template = env.from_string(text)
    except jinja2.TemplateSyntaxError as err:
        raise DataError(f"data.sources[].prompt_template: invalid Jinja at line {err.lineno}: {err.message}") from None

    def render(row: dict[str, Any]) -> str:
        try:
            return template.render(**row)
        except jinja2.UndefinedError as err:
            columns = header or sorted(row)
            raise DataError(f"prompt_template: {err.message}; columns: {columns}") from None
        except (TypeError, ValueError, ArithmeticError) as err:
            raise DataError(f"prompt_template failed on this row: {type(err).__name__}: {err}") from None

    return render


# ---------------------------------------------------------------------------------------------------------
# documents


def _document_records(doc: Document, source: SourceConfig, count: TokenCounter, chunking: ChunkConfig,
                      extra_meta: dict[str, Any] | None = None) -> Iterator[Record]:
    prompt = _template(source.document_prompt, [])
    chunks = chunk_document(doc, count, chunking.max_tokens, chunking.overlap_tokens, chunking.min_tokens)
    repeats: dict[str, int] = {}
    for chunk in chunks:
        repeats[chunk.where] = repeats.get(chunk.where, 0) + 1  # several chunks from one long paragraph/page
        where = chunk.where if repeats[chunk.where] == 1 else f"{chunk.where}#{repeats[chunk.where]}"
        heading = chunk.heading.split(" > ")[-1] if chunk.heading else ""
        user = prompt({"title": doc.title, "heading": heading, "index": chunk.index}).strip() or doc.title
        messages = [Message("user", user), Message("assistant", chunk.text)]
        if source.system:
            messages.insert(0, Message("system", source.system))
        meta = {"kind": "document", "title": doc.title, "heading": chunk.heading, "chunk": chunk.index,
                **(extra_meta or {})}
        yield Record(messages=messages, source=where, meta=meta)


def _document_row_records(row: Any, where: str, source: SourceConfig, plan: _Plan, count: TokenCounter,
                          chunking: ChunkConfig) -> Iterator[Record]:
    """A row holding raw text (pre-training style, e.g. LLaMA-Factory `c4_demo`): chunk it as a document."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    key = plan.columns.get("text") or next((k for k in TEXT_KEYS if isinstance(row.get(k), str)), TEXT_KEYS[0])
    text = row.get(key)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: document field `{key}` is missing or empty")
    title = str(row.get("title") or plan.path.stem)
    doc = text_document(text, where, title)
    for record in _document_records(doc, source, count, chunking):
        record.source = where if record.meta["chunk"] == 0 else f"{where}#{record.meta['chunk'] + 1}"
        yield record
