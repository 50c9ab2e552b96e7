"""Human evaluation: blind, shuffled A/B sheets out; filled sheets from several raters in; means, intervals
and agreement back into the run.

* `export_sheets` writes the same items as CSV and XLSX (the XLSX has 1–5 drop-downs). Items are sampled and
  shuffled, and for each item a coin flip decides whether the base or the tuned answer is "A"; the mapping
  lives only in ``eval/human/key.json``, which raters never see.
* `import_sheets` reads every filled sheet (CSV or XLSX; one rater per file, named by a `rater` column or
  the file name), validates every cell and reports *all* problems with file, row and column at once.
  Scores are averaged per item (over raters) and given 95% bootstrap intervals over items; agreement is
  Fleiss' kappa (all raters) and Cohen's kappa per rater pair, unweighted and quadratic-weighted.
"""

from __future__ import annotations

import csv
import json
import random
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from r1tune.agreement import cohen_kappa, fleiss_kappa
from r1tune.errors import DataError, R1TuneError
from r1tune.eval.metrics import bootstrap_ci
from r1tune.rundir import RunDir

CRITERIA = ("relevance", "fluency", "safety")
SCALE = (1, 2, 3, 4, 5)
SCORE_COLUMNS = tuple(f"{c}_{side}" for side in ("A", "B") for c in CRITERIA)
COLUMNS = ("item", "rater", "prompt", "reference", "answer_A", "answer_B", *SCORE_COLUMNS, "comment")
INSTRUCTIONS = (
    "Rate both answers to each prompt from 1 (very poor) to 5 (excellent). "
    "relevance: does it do what the prompt asks, correctly? fluency: is it natural, well-written language? "
    "safety: is it free of harmful, false or private content? Answers A and B come from different systems in "
    "random order. Put your name in the rater column; leave a cell empty if you cannot judge."
)


def _human_dir(run: RunDir) -> Path:
    return run.eval / "human"


def export_sheets(run: RunDir, n: int | None = None, seed: int = 0) -> dict[str, Path]:
    """Write human/sheet.csv, human/sheet.xlsx and human/key.json for up to `n` test examples."""
    samples_path = run.eval / "samples.jsonl"
    if not samples_path.is_file():
        raise R1TuneError(f"{samples_path} not found: the run has not been evaluated", hint=f"run `r1tune eval {run.path}`")
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = [s for s in samples if isinstance(s.get("base"), dict) and isinstance(s.get("tuned"), dict)]
    if not samples:
        raise R1TuneError("no base-vs-tuned samples to rate (was the run evaluated with eval.compare_base: false?)")
    rng = random.Random(seed)
    chosen = rng.sample(samples, min(n or len(samples), len(samples)))  # a random subset in random order
    rows, key = [], {}
    for i, sample in enumerate(chosen, 1):
        item = f"H{i:03d}"
        first, second = ("base", "tuned") if rng.random() < 0.5 else ("tuned", "base")
        key[item] = {"sample_id": sample["id"], "A": first, "B": second}
        rows.append({"item": item, "rater": "", "prompt": sample["prompt"], "reference": sample["reference"],
                     "answer_A": sample[first]["answer"], "answer_B": sample[second]["answer"],
                     **dict.fromkeys(SCORE_COLUMNS, ""), "comment": ""})
    folder = _human_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "sheet.csv", "xlsx": folder / "sheet.xlsx", "key": folder / "key.json"}
    with paths["csv"].open("w", encoding="utf-8-sig", newline="") as fh:  # BOM: Excel opens Chinese text right
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    _write_xlsx(paths["xlsx"], rows)
    paths["key"].write_text(json.dumps({"seed": seed, "items": key}, indent=2), encoding="utf-8")
    return paths


def _write_xlsx(path: Path, rows: list[dict[str, str]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    sheet.title = "ratings"
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([row[c] for c in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = {"item": 7, "rater": 12, "prompt": 40, "reference": 40, "answer_A": 50, "answer_B": 50, "comment": 30}
    for index, column in enumerate(COLUMNS, 1):
        letter = sheet.cell(row=1, column=index).column_letter
        sheet.column_dimensions[letter].width = widths.get(column, 12)
        for cell in sheet[letter][1:]:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    check = DataValidation(type="whole", operator="between", formula1="1", formula2="5", allow_blank=True,
                           showErrorMessage=True, error="Enter a whole number from 1 to 5")
    sheet.add_data_validation(check)
    first, last = COLUMNS.index(SCORE_COLUMNS[0]) + 1, COLUMNS.index(SCORE_COLUMNS[-1]) + 1
    check.add(f"{sheet.cell(row=2, column=first).coordinate}:{sheet.cell(row=len(rows) + 1, column=last).coordinate}")
    sheet.freeze_panes = "C2"
    notes = book.create_sheet("instructions")
    notes["A1"] = INSTRUCTIONS
    notes["A1"].alignment = Alignment(wrap_text=True, vertical="top")
    notes.column_dimensions["A"].width = 100
    book.save(path)


# ---------------------------------------------------------------------------------------------------------
# Import


def _read_table(path: Path) -> list[dict[str, Any]]:
    """Rows (dicts by header) of a CSV or of the first sheet of an XLSX; each with its 1-based line number."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except Exception as err:
            raise DataError(f"{path}: cannot be opened as an Excel workbook ({err})") from None
        sheet = book["ratings"] if "ratings" in book.sheetnames else book.worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        book.close()
    elif path.suffix.lower() in (".csv", ".tsv"):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text", hint="save the sheet as CSV UTF-8 or as .xlsx") from None
        values = list(csv.reader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    else:
        raise DataError(f"{path}: unsupported sheet type {path.suffix!r}", hint="use the exported .csv or .xlsx")
    if not values:
        raise DataError(f"{path}: the sheet is empty")
    header = [str(h).strip() if h is not None else "" for h in values[0]]
    missing = [c for c in ("item", *SCORE_COLUMNS) if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}", hint="rate in a copy of the exported sheet")
    rows = []
    for line, raw in enumerate(values[1:], 2):
        if all(v in (None, "") for v in raw):
            continue
        rows.append({"_line": line, **{h: raw[i] if i < len(raw) else None for i, h in enumerate(header) if h}})
    return rows


def _score(value: Any) -> int | None | str:
    """1..5, None for blank, or an error text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"got {value!r}, expected a whole number 1-5 (or blank)"
    if number != int(number) or int(number) not in SCALE:
        return f"got {value!r}, expected a whole number 1-5 (or blank)"
    return int(number)


def read_ratings(paths: list[Path], key: dict[str, dict]) -> dict[str, dict[tuple[str, str, str], int]]:
    """{rater: {(item, model, criterion): score}}; raises one DataError listing every bad cell."""
    ratings: dict[str, dict[tuple[str, str, str], int]] = {}
    problems: list[str] = []
    for path in paths:
        rows = _read_table(Path(path))
        names = {str(r.get("rater") or "").strip() for r in rows} - {""}
        if len(names) > 1:
            problems.append(f"{path}: several raters {sorted(names)} in one file; use one file per rater")
            continue
        rater = names.pop() if names else Path(path).stem
        if rater in ratings:
            problems.append(f"{path}: rater {rater!r} already read from another file")
            continue
        scores: dict[tuple[str, str, str], int] = {}
        seen_items: set[str] = set()
        for row in rows:
            item = str(row.get("item") or "").strip()
            where = f"{path}:{row['_line']}"
            if item not in key:
                problems.append(f"{where}: item {item!r} is not in this run's sheet (key.json)")
                continue
            if item in seen_items:
                problems.append(f"{where}: item {item} appears twice")
                continue
            seen_items.add(item)
            for column in SCORE_COLUMNS:
                value = _score(row.get(column))
                if isinstance(value, str):
                    problems.append(f"{where} column {column}: {value}")
                elif value is not None:
                    criterion, side = column.rsplit("_", 1)
                    scores[(item, key[item][side], criterion)] = value
        ratings[rater] = scores
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DataError(f"{len(problems)} problem(s) in the rating sheets (nothing was imported):\n  {shown}")
    if not any(ratings.values()):
        raise DataError("the sheets hold no scores yet", hint="fill in the 1-5 columns and import again")
    return ratings


def summarise_ratings(ratings: dict[str, dict[tuple[str, str, str], int]], n_resamples: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """Per criterion: per-model mean with a 95% bootstrap CI over items, the paired difference, and kappas."""
    raters = sorted(ratings)
    items = sorted({unit[0] for scores in ratings.values() for unit in scores})
    out: dict[str, Any] = {"n_raters": len(raters), "raters": raters, "n_items": len(items), "criteria": {}}
    for criterion in CRITERIA:
        per_model: dict[str, dict[str, float]] = {}
        for model in ("base", "tuned"):
            for item in items:
                values = [ratings[r][(item, model, criterion)] for r in raters if (item, model, criterion) in ratings[r]]
                if values:
                    per_model.setdefault(model, {})[item] = float(np.mean(values))
        entry: dict[str, Any] = {}
        for model, by_item in per_model.items():
            entry[model] = bootstrap_ci(list(by_item.values()), n_resamples=n_resamples, seed=seed)
        both = [i for i in items if i in per_model.get("base", {}) and i in per_model.get("tuned", {})]
        if both:
            entry["delta"] = bootstrap_ci([per_model["tuned"][i] for i in both], [per_model["base"][i] for i in both],
                                          n_resamples, seed=seed)
        entry["agreement"] = _agreement(ratings, raters, criterion)
        out["criteria"][criterion] = entry
    return out


def _agreement(ratings: dict, raters: list[str], criterion: str) -> dict[str, Any]:
    """Kappas over units (item, model) that the raters in question all scored."""
    if len(raters) < 2:
        return {"note": "agreement needs at least two raters"}
    units = sorted({(i, m) for r in raters for (i, m, c) in ratings[r] if c == criterion})
    full = [u for u in units if all((*u, criterion) in ratings[r] for r in raters)]
    result: dict[str, Any] = {"units_rated_by_all": len(full)}
    if full:
        result["fleiss_kappa"] = fleiss_kappa([[ratings[r][(*u, criterion)] for r in raters] for u in full], SCALE)
    pairs = []
    for a, b in combinations(raters, 2):
        shared = [u for u in units if (*u, criterion) in ratings[a] and (*u, criterion) in ratings[b]]
        if shared:
            x = [ratings[a][(*u, criterion)] for u in shared]
            y = [ratings[b][(*u, criterion)] for u in shared]
            pairs.append({"raters": [a, b], "n": len(shared), "cohen_kappa": cohen_kappa(x, y, SCALE),
                          "quadratic_kappa": cohen_kappa(x, y, SCALE, weights="quadratic")})
    result["cohen"] = pairs
    return result


def import_sheets(run: RunDir, paths: list[Path], seed: int = 0) -> dict[str, Any]:
    """Read filled sheets, write eval/human_results.json and add the summary to metrics.json."""
    key_path = _human_dir(run) / "key.json"
    if not key_path.is_file():
        raise R1TuneError(f"{key_path} not found: sheets must come from `r1tune eval sheet` of this run")
    key = json.loads(key_path.read_text(encoding="utf-8"))["items"]
    if not paths:
        raise R1TuneError("no sheets given", hint="pass the filled .csv/.xlsx files, one per rater")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise R1TuneError(f"sheet file(s) not found: {missing}")
    results = summarise_ratings(read_ratings([Path(p) for p in paths], key), seed=seed)
    results["sheets"] = [str(p) for p in paths]
    (run.eval / "human_results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    if run.metrics.is_file():
        run.write_metrics(run.read_metrics().model_copy(update={"human": results}))
    return results
