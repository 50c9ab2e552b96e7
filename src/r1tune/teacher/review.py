"""The review of synthetic records by a person: files out (CSV, XLSX, Label Studio tasks), decisions in.

In the CSV/XLSX sheet a reviewer writes `yes` or `no` in the `accept` column and may edit the question or
the answer in place; rows left blank stay out (and are counted). In Label Studio the reviewer picks
accept/reject in the `review` choices and may correct the `answer` text (the labeling config is written
beside the tasks). Accepted records keep their provenance plus `meta.reviewed` and whether they were edited.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tune.data.records import Message, Record, read_jsonl, write_jsonl
from r1tune.errors import DataError

COLUMNS = ["id", "accept", "question", "answer", "kind", "document", "where", "chunk"]
YES, NO = {"yes", "y", "1", "true", "x", "accept", "accepted", "是"}, {"no", "n", "0", "false", "reject", "rejected", "否"}
LABEL_CONFIG = """<View>
  <Text name="prompt" value="$prompt"/>
  <TextArea name="answer" toName="prompt" editable="true" rows="6"/>
  <Choices name="review" toName="prompt" choice="single" required="true">
    <Choice value="accept"/><Choice value="reject"/>
  </Choices>
</View>
"""


@dataclass
class ReviewOutcome:
    accepted: list[Record]
    rejected: int
    unreviewed: int
    edited: int


def write_review_files(rows: list[dict[str, Any]], records: list[Record], folder: Path) -> list[Path]:
    """`review.csv`, `review.xlsx`, `label_studio_tasks.json` and `label_studio_config.xml` in `folder`."""
    from openpyxl import Workbook

    from r1tune.data.label_studio import export_tasks

    table = [[row.get(c, "") if c != "accept" else "" for c in COLUMNS] for row in rows]
    with (folder / "review.csv").open("w", encoding="utf-8-sig", newline="") as fh:  # BOM: Excel reads UTF-8
        csv.writer(fh).writerows([COLUMNS, *table])
    book = Workbook()
    sheet = book.active
    sheet.title = "review"
    for line in [COLUMNS, *table]:
        sheet.append(line)
    book.save(folder / "review.xlsx")
    tasks = export_tasks(records, folder / "label_studio_tasks.json", model_version="r1tune-synth")
    (folder / "label_studio_config.xml").write_text(LABEL_CONFIG, encoding="utf-8")
    return [folder / "review.csv", folder / "review.xlsx", tasks, folder / "label_studio_config.xml"]


def apply_review(review_file: Path, records_file: Path) -> ReviewOutcome:
    """The records of `records_file` a reviewer accepted in `review_file` (CSV, XLSX or a Label Studio JSON
    export), with their edits."""
    records = {r.id: r for r in read_jsonl(records_file)}
    decisions = _label_studio(review_file) if review_file.suffix == ".json" else _sheet(review_file)
    outcome = ReviewOutcome([], 0, 0, 0)
    for record_id, where, verdict, question, answer in decisions:
        record = records.get(record_id)
        if record is None:
            raise DataError(f"{where}: id {record_id!r} is not a record of {records_file}",
                            hint="review the files written by the same `r1tune synth` run")
        if verdict is None:
            outcome.unreviewed += 1
        elif not verdict:
            outcome.rejected += 1
        else:
            outcome.accepted.append(_edited(record, question, answer, outcome))
    outcome.unreviewed += len(records) - len(decisions)
    return outcome


def write_accepted(outcome: ReviewOutcome, out: Path) -> int:
    return write_jsonl(outcome.accepted, out)


def _edited(record: Record, question: str | None, answer: str | None, outcome: ReviewOutcome) -> Record:
    question = (question or "").strip() or record.prompt_messages[-1].content
    answer = (answer or "").strip() or record.answer.content
    edited = (question, answer) != (record.prompt_messages[-1].content, record.answer.content)
    outcome.edited += edited
    return Record([Message("user", question), Message("assistant", answer)], source=record.source,
                  meta={**record.meta, "reviewed": True, "edited": edited}, id=record.id)


Decision = tuple[str, str, bool | None, str | None, str | None]  # id, where, accepted?, question, answer


def _sheet(path: Path) -> list[Decision]:
    rows = _xlsx_rows(path) if path.suffix.lower() == ".xlsx" else _csv_rows(path)
    if not rows or [str(c or "").strip().lower() for c in rows[0][:len(COLUMNS)]][:4] != COLUMNS[:4]:
        raise DataError(f"{path}: not a review sheet (the first row must start with {', '.join(COLUMNS[:4])})")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        cells = [str(c).strip() if c is not None else "" for c in row] + [""] * len(COLUMNS)
        out.append((cells[0], f"{path}:{line}", _verdict(cells[1], f"{path}:{line}"), cells[2], cells[3]))
    return out


def _verdict(cell: str, where: str) -> bool | None:
    value = cell.strip().lower()
    if not value:
        return None
    if value in YES or value in NO:
        return value in YES
    raise DataError(f"{where}: accept is {cell!r}; write yes or no (or leave it blank)")


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def _xlsx_rows(path: Path) -> list[list[Any]]:
    from openpyxl import load_workbook

    return [list(row) for row in load_workbook(path, read_only=True).active.iter_rows(values_only=True)]


def _label_studio(path: Path) -> list[Decision]:
    from r1tune.data.label_studio import adjudicate, annotations

    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not a Label Studio JSON export ({err.msg})") from None
    out = []
    for index, task in enumerate(tasks):
        where = f"{path}#task{index}"
        record_id = ((task.get("data") or {}).get("meta") or {}).get("record_id")
        if not task.get("annotations"):
            out.append((record_id, where, None, None, None))
            continue
        decided, _ = adjudicate(*annotations(task, where))
        verdict = decided.get("review")
        out.append((record_id, where, None if verdict is None else verdict == "accept", None, decided.get("answer")))
    return out
