"""Turn data files into rows: JSON, JSONL, CSV/TSV (any common encoding), XLSX and Parquet.

Every row comes with its location (`file:line`, `file:#index` for JSON arrays and Parquet, `file:sheet!row`
for XLSX) so a bad row can be traced. Rows that cannot be parsed go to the quarantine; files that cannot
be opened at all raise `DataError` naming the file. Heavy libraries (openpyxl, pyarrow) load lazily.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r1tune.data.quarantine import Quarantine
from r1tune.errors import DataError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
SHEET_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
ROW_SUFFIXES = set(TABLE_SUFFIXES) | JSON_SUFFIXES | SHEET_SUFFIXES | PARQUET_SUFFIXES

_SAMPLE_BYTES = 1 << 16
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Characters a Chinese business export is made of; used to accept a GB18030 reading of a non-UTF-8 file.
_PLAUSIBLE_ZH = re.compile(r"[\s\x20-\x7e\u00b7\u2000-\u206f\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long answers are normal in training data


def detect_encoding(path: Path, declared: str = "auto") -> str:
    """The text encoding of `path`: BOMs first, then strict UTF-8, then GB18030, then charset-normalizer.

    GB18030 is tried before the statistical detector because GBK/GB2312 exports are the common case for
    Chinese users and the detector confuses short GBK samples with Korean or Japanese code pages. GB18030
    is a superset of GBK and GB2312, so reading either as GB18030 is lossless.
    """
    if declared != "auto":
        try:
            codecs.lookup(declared)
        except LookupError:
            raise DataError(f"{path}: unknown encoding {declared!r}", hint="e.g. utf-8, gb18030, big5") from None
        return declared
    with Path(path).open("rb") as fh:
        sample = fh.read(_SAMPLE_BYTES)
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if _decodes(sample, "utf-8"):
        return "utf-8"
    if _decodes(sample, "gb18030"):
        text = sample.decode("gb18030", errors="ignore")
        if text and len(_PLAUSIBLE_ZH.findall(text)) >= 0.97 * len(text):
            return "gb18030"
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise DataError(f"{path}: cannot tell the text encoding (binary file?)",
                        hint="set data.sources[].encoding, e.g. utf-8 or gb18030")
    name = best.encoding.lower()
    return "gb18030" if name in ("gb2312", "gbk", "hz") else name


def _decodes(sample: bytes, encoding: str) -> bool:
    """Strict decode of a sample that may end in the middle of a multi-byte character."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        return True
    except UnicodeDecodeError:
        return False


def read_text(path: Path, encoding: str = "auto") -> str:
    """A whole text file, decoded; undecodable bytes raise a DataError naming the line."""
    enc = detect_encoding(path, encoding)
    raw = Path(path).read_bytes()
    try:
        return raw.decode(enc)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: bytes that are not {enc} ({err.reason})",
                        hint="set data.sources[].encoding to the file's real encoding") from None


def iter_rows(path: Path, quarantine: Quarantine, encoding: str = "auto", sheet: str | None = None,
              ) -> Iterator[tuple[str, Any]]:
    """(location, row) for every row of a JSON/JSONL/CSV/TSV/XLSX/Parquet file."""
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        yield from _table_rows(path, quarantine, encoding)
    elif suffix in SHEET_SUFFIXES:
        yield from _sheet_rows(path, sheet)
    elif suffix in PARQUET_SUFFIXES:
        yield from _parquet_rows(path)
    else:
        yield from _json_rows(path, quarantine, encoding)


def table_header(path: Path, encoding: str = "auto", sheet: str | None = None) -> list[str]:
    """Column names of a table file (empty for JSON)."""
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        with _open_text(path, encoding) as fh:
            reader = csv.reader(fh, delimiter=_delimiter(path, encoding))
            return [h.strip() for h in next(reader, [])]
    if suffix in SHEET_SUFFIXES:
        first = next(_sheet_rows(path, sheet), None)
        return list(first[1]) if first else []
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    return []


def _open_text(path: Path, encoding: str):
    # surrogateescape: a stray byte poisons only its own row (quarantined), not the whole file
    return Path(path).open(encoding=detect_encoding(path, encoding), errors="surrogateescape", newline="")


def _json_rows(path: Path, quarantine: Quarantine, encoding: str) -> Iterator[tuple[str, Any]]:
    """Rows of a JSON array/object file or a JSONL file ('file:#index' / 'file:line')."""
    with _open_text(path, encoding) as fh:
        head = fh.read(4096)
    if path.suffix.lower() == ".json" or head.lstrip().startswith("["):
        text = read_text(path, encoding)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            jsonl_named_json = err.msg == "Extra data" and text.lstrip().startswith("{")
            if not jsonl_named_json and (path.suffix.lower() == ".json" or text.lstrip().startswith("[")):
                raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg}, column {err.colno})") from None
            data = None
        if isinstance(data, dict):  # {"data": [...]} wrappers are common in API dumps
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path}: a .json data file must hold a list of records")
            data = lists[0]
        if data is not None:
            if not isinstance(data, list):
                raise DataError(f"{path}: a .json data file must hold a list of records")
            for i, row in enumerate(data):
                yield f"{path}:#{i}", row
            return
    with _open_text(path, encoding) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            if _UNDECODABLE.search(line):
                quarantine.add(where, "read", "bytes that do not decode in the file's encoding", _printable(line))
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                quarantine.add(where, "read", f"invalid JSON ({err.msg} at column {err.colno})", line[:500])


def _delimiter(path: Path, encoding: str) -> str:
    """The suffix's delimiter unless the header clearly uses another (';' and '|' exports exist)."""
    default = TABLE_SUFFIXES.get(path.suffix.lower(), ",")
    with _open_text(path, encoding) as fh:
        header = fh.readline()
    if default in header:
        return default
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else default


def _table_rows(path: Path, quarantine: Quarantine, encoding: str) -> Iterator[tuple[str, dict[str, str]]]:
    """CSV/TSV rows as dicts; rows with a different number of fields than the header are quarantined."""
    with _open_text(path, encoding) as fh:
        reader = csv.reader(fh, delimiter=_delimiter(path, encoding))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"{path}:1: unreadable header ({err})") from None
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise DataError(f"{path}:1: duplicate column names {dupes}", hint="rename the columns in the header")
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                quarantine.add(f"{path}:{reader.line_num}", "read", f"broken CSV row ({err})")
                continue
            where = f"{path}:{reader.line_num}"
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                quarantine.add(where, "read", f"row has a different number of fields than the header "
                               f"({len(fields)} vs {len(header)}: truncated or unquoted row?)", fields)
                continue
            if any(_UNDECODABLE.search(f) for f in fields):
                quarantine.add(where, "read", "bytes that do not decode in the file's encoding",
                               [_printable(f) for f in fields])
                continue
            yield where, dict(zip(header, fields, strict=True))


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _cell_text(value: Any) -> str:
    """Spreadsheet cells as the user sees them: 12.0 -> '12', None -> ''."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _sheet_rows(path: Path, sheet: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    import zipfile

    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable XLSX workbook ({err})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise DataError(f"{path}: no worksheet {sheet!r}; sheets: {book.sheetnames}")
        ws = book[sheet] if sheet else book.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = [_cell_text(h).strip() for h in next(rows, ())]
        while header and not header[-1]:
            header.pop()
        for number, values in enumerate(rows, start=2):
            cells = [_cell_text(v) for v in values][: len(header)]
            if not any(c.strip() for c in cells):
                continue
            cells += [""] * (len(header) - len(cells))
            yield f"{path}:{ws.title}!{number}", dict(zip(header, cells, strict=True))
    finally:
        book.close()


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from None
    index = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield f"{path}:#{index}", row
            index += 1
