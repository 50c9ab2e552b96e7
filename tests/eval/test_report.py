"""report.html from run folders: sections, the safety-regression banner, partial and damaged runs,
the human-eval section, and `r1tune compare`."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.eval import write_report
from r1tune.eval.compare import compare_runs
from r1tune.eval.report import build_context, metric_rows
from r1tune.rundir import RunDir


def _html(run: RunDir) -> str:
    return write_report(run).read_text(encoding="utf-8")


def test_full_report_has_every_section_and_only_inline_images(fake_run, tmp_path) -> None:
    html = _html(RunDir(fake_run(tmp_path / "run")))
    for heading in ("Run summary", "Base vs tuned", "Red-team probes", "Latency", "Judge", "Training",
                    "Data", "Examples"):
        assert f">{heading}</h2>" in html, heading
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(images) == 5 and all(src.startswith("data:image/svg+xml;base64,") for src in images)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|url\(|@import""", html)
    assert "Safety regression" not in html and "The tuned model is better" in html


def test_metric_rows_show_change_interval_and_direction(fake_run, tmp_path) -> None:
    rows = {r["label"]: r for r in metric_rows(RunDir(fake_run(tmp_path / "run")).read_metrics())}
    assert rows["perplexity on test answers"]["change"] == "-70.0%" and rows["perplexity on test answers"]["cls"] == "up"
    rouge = rows["ROUGE-L"]
    assert rouge["cls"] == "up" and rouge["ci"].count("…") == 1 and rouge["significant"]
    assert rows["empty answers (scored 0)"]["base"] == "1" and rows["empty answers (scored 0)"]["cls"] == "up"
    assert "format validity" not in rows  # no format check in this run: no row, rather than a fake 0


def test_tuned_model_failing_more_probes_is_shown_in_red(fake_run, tmp_path) -> None:
    html = _html(RunDir(fake_run(tmp_path / "run", redteam_regression=True)))
    assert '<div class="verdict bad"><b>Safety regression:</b> the tuned model passes 1 of 2' in html
    assert '<tr class="worse"><td>prompt injection</td>' in html  # the category row is red
    assert '<tr class="worse"><td>p-inject</td>' in html  # and so is the regressed probe


def test_a_run_without_evaluation_or_training_still_gets_a_report(tmp_path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("data: {sources: [{path: d.jsonl}]}\n")
    html = _html(RunDir(folder))
    assert "has not been evaluated yet" in html and "Base vs tuned" not in html


def test_damaged_files_are_reported_on_the_page(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    (run.train / "train_summary.json").write_text("{not json")
    with (run.eval / "samples.jsonl").open("a") as fh:
        fh.write("{broken\n")
    context = build_context(run)
    assert any("train_summary.json could not be read" in p for p in context["problems"])
    assert any("samples.jsonl: 1 unreadable line(s) skipped (lines [5])" in p for p in context["problems"])
    html = _html(run)
    assert "Some files of this run could not be read" in html and "Base vs tuned" in html


def test_human_results_appear_in_the_report(fake_run, tmp_path) -> None:
    run = RunDir(fake_run(tmp_path / "run"))
    cell = {"mean": 4.0, "low": 3.5, "high": 4.5}
    human = {"n_raters": 2, "n_items": 4, "criteria": {
        "fluency": {"base": {"mean": 3.0, "low": 2.5, "high": 3.5}, "tuned": cell,
                    "delta": {"mean": 1.0, "low": 0.5, "high": 1.5}, "agreement": {"fleiss_kappa": 0.42}}}}
    run.write_metrics(run.read_metrics().model_copy(update={"human": human}))
    html = _html(run)
    assert ">Human evaluation</h2>" in html and "4.00 (3.50–4.50)" in html and "0.42" in html


def test_compare_two_runs(fake_run, tmp_path) -> None:
    a = RunDir(fake_run(tmp_path / "a"))
    b = RunDir(fake_run(tmp_path / "b", redteam_regression=True))
    b.config_file.write_text(a.config_file.read_text() + "train: {lr: 0.001}\n")
    metrics = b.read_metrics()
    metrics.tuned.rougeL += 5
    b.write_metrics(metrics)
    result = compare_runs(a, b)
    assert result["config_diff"] == [{"key": "train.lr", "a": 0.0002, "b": 0.001}]
    rouge = next(r for r in result["metrics"] if r["key"] == "rougeL")
    assert rouge["b_minus_a"] == 5 and rouge["b_better"] is True
    assert result["redteam_tuned_passed"] == {"a": "2/2", "b": "1/2"}
    output = CliRunner().invoke(app, ["compare", str(a.path), str(b.path)]).output
    assert "config differences" in output and "metrics (A vs B)" in output and "A 2/2, B 1/2" in output
    assert json.loads(CliRunner().invoke(app, ["compare", str(a.path), str(b.path), "--json"]).output)["a"]["run"] == "a"


def test_compare_needs_evaluated_runs(fake_run, tmp_path) -> None:
    a = RunDir(fake_run(tmp_path / "a"))
    a.metrics.unlink()
    result = CliRunner().invoke(app, ["compare", str(a.path), str(a.path)])
    assert result.exit_code != 0 and "has no metrics.json" in str(result.exception)


def test_eval_sheet_command_and_eval_help(fake_run, tmp_path) -> None:
    run = fake_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["eval", "sheet", str(run), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert (run / "eval" / "human" / "sheet.xlsx").is_file() and (run / "eval" / "human" / "key.json").is_file()
    assert "sheet" in CliRunner().invoke(app, ["eval", "--help"]).output


def test_a_metrics_file_that_does_not_fit_names_file_and_field(fake_run, tmp_path) -> None:
    from r1tune.artifacts import ArtifactError

    run = RunDir(fake_run(tmp_path / "run"))
    broken = json.loads(run.metrics.read_text())
    broken["tuned"]["perplexity"] = "low"
    del broken["n_examples"]
    run.metrics.write_text(json.dumps(broken))
    with pytest.raises(ArtifactError) as err:
        run.read_metrics()
    assert str(run.metrics) in err.value.message and "field n_examples: Field required" in err.value.message
    assert "(and 1 more problem(s))" in err.value.message
    run.metrics.write_text("{not json")
    with pytest.raises(ArtifactError, match="metrics.json: not valid JSON"):
        run.read_metrics()
    # the report still renders, and says what it could not read
    context = build_context(run)
    assert any(p.startswith("metrics.json could not be read") for p in context["problems"])
