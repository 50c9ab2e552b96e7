"""Human evaluation sheets: blind and shuffled export, validated import, means, intervals and kappas."""

from __future__ import annotations

import csv
import json

import pytest
from openpyxl import load_workbook

from r1tune.errors import DataError, R1TuneError
from r1tune.eval.human import COLUMNS, SCORE_COLUMNS, export_sheets, import_sheets
from r1tune.rundir import RunDir


def _csv_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _fill(run, rater, score_for, path, as_xlsx=False):
    """Copy the exported sheet and score answers: score_for(model, criterion, item) -> 1..5 or None."""
    key = json.loads((run.eval / "human" / "key.json").read_text())["items"]
    if as_xlsx:
        book = load_workbook(run.eval / "human" / "sheet.xlsx")
        sheet = book["ratings"]
        header = [c.value for c in sheet[1]]
        for row in sheet.iter_rows(min_row=2):
            item = row[header.index("item")].value
            row[header.index("rater")].value = rater
            for column in SCORE_COLUMNS:
                criterion, side = column.rsplit("_", 1)
                row[header.index(column)].value = score_for(key[item][side], criterion, item)
        book.save(path)
        return path
    rows = _csv_rows(run.eval / "human" / "sheet.csv")
    for row in rows:
        row["rater"] = rater
        for column in SCORE_COLUMNS:
            criterion, side = column.rsplit("_", 1)
            value = score_for(key[row["item"]][side], criterion, row["item"])
            row[column] = "" if value is None else str(value)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_export_is_blind_shuffled_and_identical_in_csv_and_xlsx(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    paths = export_sheets(run, n=3, seed=7)
    rows = _csv_rows(paths["csv"])
    assert [r["item"] for r in rows] == ["H001", "H002", "H003"] and list(rows[0]) == list(COLUMNS)
    book = load_workbook(paths["xlsx"])
    xlsx = [[c.value or "" for c in row] for row in book["ratings"].iter_rows(min_row=2)]
    assert [[r[c] for c in COLUMNS] for r in rows] == xlsx
    assert book["ratings"].data_validations.dataValidation[0].formula2 == "5"  # 1-5 drop-down
    key = json.loads(paths["key"].read_text())["items"]
    samples = {json.loads(line)["id"]: json.loads(line) for line in (run.eval / "samples.jsonl").read_text().splitlines()}
    for row in rows:  # answers are placed exactly as the key says, and model names never appear
        entry = key[row["item"]]
        assert row["answer_A"] == samples[entry["sample_id"]][entry["A"]]["answer"]
        assert row["answer_B"] == samples[entry["sample_id"]][entry["B"]]["answer"]
        assert "base" not in row.values() and "tuned" not in row.values()
    assert export_sheets(run, n=3, seed=7)["key"].read_text() == paths["key"].read_text()  # seeded
    assert len(_csv_rows(export_sheets(run, seed=1)["csv"])) == 4  # default: every test example


def test_import_means_intervals_and_kappas(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    export_sheets(run, seed=3)
    # Alice gives tuned 5 and base 3 everywhere; Bob gives tuned 4 and base 3, except one blank relevance.
    alice = _fill(run, "alice", lambda m, c, i: 5 if m == "tuned" else 3, tmp_path / "alice.csv")
    bob = _fill(run, "bob", lambda m, c, i: None if (i, m, c) == ("H001", "base", "relevance")
                else (4 if m == "tuned" else 3), tmp_path / "bob.xlsx", as_xlsx=True)
    results = import_sheets(run, [alice, bob])
    assert results["n_raters"] == 2 and results["raters"] == ["alice", "bob"] and results["n_items"] == 4
    fluency = results["criteria"]["fluency"]
    assert fluency["tuned"]["mean"] == pytest.approx(4.5) and fluency["base"]["mean"] == pytest.approx(3.0)
    assert fluency["delta"]["mean"] == pytest.approx(1.5) and fluency["delta"]["low"] == pytest.approx(1.5)
    # Units (item, model): 4 base units both say 3, 4 tuned units 5 vs 4. Categories 1..5.
    # Cohen: p_o = 4/8; marginals alice (3: 1/2, 5: 1/2), bob (3: 1/2, 4: 1/2) -> p_e = 1/4 -> kappa = 1/3
    pair = fluency["agreement"]["cohen"][0]
    assert pair["raters"] == ["alice", "bob"] and pair["n"] == 8 and pair["cohen_kappa"] == pytest.approx(1 / 3)
    # Relevance: H001/base was left blank by bob, so 7 units are rated by both.
    assert results["criteria"]["relevance"]["agreement"]["units_rated_by_all"] == 7
    assert results["criteria"]["relevance"]["base"]["mean"] == pytest.approx(3.0)
    assert run.read_metrics().human["criteria"]["safety"]["tuned"]["mean"] == pytest.approx(4.5)
    assert (run.eval / "human_results.json").is_file()


def test_one_rater_has_no_agreement_but_still_means(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    export_sheets(run)
    results = import_sheets(run, [_fill(run, "solo", lambda m, c, i: 4, tmp_path / "solo.csv")])
    assert results["criteria"]["fluency"]["agreement"] == {"note": "agreement needs at least two raters"}


def test_bad_cells_are_all_listed_and_nothing_is_imported(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    export_sheets(run)
    bad = _fill(run, "carol", lambda m, c, i: 3, tmp_path / "carol.csv")
    rows = _csv_rows(bad)
    rows[0]["fluency_A"], rows[1]["safety_B"], rows[2]["item"] = "6", "good", "H777"
    with open(bad, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError) as err:
        import_sheets(run, [bad])
    message = str(err.value)
    assert "3 problem(s)" in message and "nothing was imported" in message
    assert "carol.csv:2 column fluency_A: got '6'" in message and "carol.csv:3 column safety_B: got 'good'" in message
    assert "carol.csv:4: item 'H777' is not in this run's sheet" in message
    assert not (run.eval / "human_results.json").exists()


def test_wrong_files_are_explained(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    with pytest.raises(R1TuneError, match="key.json not found"):
        import_sheets(run, [tmp_path / "x.csv"])
    export_sheets(run)
    (tmp_path / "cols.csv").write_text("item,relevance_A\nH001,3\n")
    with pytest.raises(DataError, match="missing column"):
        import_sheets(run, [tmp_path / "cols.csv"])
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported sheet type"):
        import_sheets(run, [tmp_path / "notes.txt"])
    with pytest.raises(R1TuneError, match="not found"):
        import_sheets(run, [tmp_path / "missing.csv"])
    blank = _fill(run, "dan", lambda m, c, i: None, tmp_path / "dan.csv")
    with pytest.raises(DataError, match="no scores yet"):
        import_sheets(run, [blank])
