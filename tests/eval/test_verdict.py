"""The headline verdict is decided by task metrics with their intervals; perplexity is context only."""

from __future__ import annotations

from r1tune.artifacts import ConfidenceInterval, SliceScores
from r1tune.eval import write_report
from r1tune.eval.verdict import decide
from r1tune.rundir import RunDir


def _ci(low: float, high: float, better: str = "higher") -> ConfidenceInterval:
    return ConfidenceInterval(mean=(low + high) / 2, low=low, high=high, n=40, paired=True, n_resamples=200,
                              alpha=0.05, seed=0, better=better)


def _with_facts(run: RunDir, base_recall: float, tuned_recall: float, recall_ci: tuple[float, float],
                base_invented: float = 0.0, tuned_invented: float = 0.0, **update):
    metrics = run.read_metrics()
    base = metrics.base.model_copy(update={"key_fact_recall": base_recall, "invented_facts": base_invented})
    tuned = metrics.tuned.model_copy(update={"key_fact_recall": tuned_recall, "invented_facts": tuned_invented})
    delta = {**metrics.delta, "key_fact_recall": tuned_recall - base_recall,
             "invented_facts": tuned_invented - base_invented}
    ci = {**metrics.ci, "key_fact_recall": _ci(*recall_ci), "invented_facts": _ci(-1.0, 1.0, "lower")}
    metrics = metrics.model_copy(update={"base": base, "tuned": tuned, "delta": delta, "ci": ci, **update})
    run.write_metrics(metrics)
    return metrics


def test_better_needs_a_significant_task_gain_and_nothing_worse(fake_run, tmp_path):
    run = RunDir(fake_run(tmp_path / "run"))
    verdict = decide(_with_facts(run, 20.0, 60.0, (25.0, 55.0)))
    assert verdict.outcome == "better" and verdict.reasons == []
    assert verdict.evidence[0] == "key-fact recall 20.0 → 60.0 (+40.0, 95% CI +25.0 to +55.0)"
    assert verdict.context.startswith("perplexity 40.00 → 12.00 (-70.0%)")


def test_perplexity_down_but_key_facts_down_is_a_red_headline(fake_run, tmp_path):
    run = RunDir(fake_run(tmp_path / "run"))
    metrics = _with_facts(run, 60.0, 45.0, (-30.0, -2.0), base_invented=2.0, tuned_invented=9.0)
    verdict = decide(metrics)
    assert metrics.perplexity_change_pct() == -70.0 and metrics.delta["rougeL"] > 0  # sounds more like the reference
    assert verdict.outcome == "worse"
    assert verdict.reasons == ["key-fact recall got worse (-15.0)", "invented facts got worse (+7.0, within the noise)"]
    html = write_report(run).read_text(encoding="utf-8")
    assert '<div class="verdict bad">' in html and "<b>The tuned model is worse than the base model" in html
    assert "key-fact recall got worse (-15.0)" in html and "The tuned model is better" not in html
    assert "For context, not decisive: perplexity 40.00 → 12.00 (-70.0%)" in html


def test_a_small_drop_in_recall_is_still_reported_and_noise_alone_is_unclear(fake_run, tmp_path):
    run = RunDir(fake_run(tmp_path / "run"))
    assert decide(_with_facts(run, 60.0, 59.0, (-5.0, 3.0))).outcome == "worse"  # facts: any drop is named
    metrics = RunDir(fake_run(tmp_path / "other")).read_metrics()  # ROUGE-L, BLEU, token F1: no facts
    flat = metrics.model_copy(update={"ci": {k: _ci(-1.0, 1.0) for k in metrics.ci}})
    assert decide(flat).outcome == "unclear"
    assert decide(flat).reasons == ["no task metric changed beyond its 95% interval"]
    assert decide(metrics.model_copy(update={"base": None})) is None


def test_the_worst_slice_is_named_when_it_went_the_other_way(fake_run, tmp_path):
    run = RunDir(fake_run(tmp_path / "run"))
    worst = SliceScores(dimension="intent", value="card_lost", n=7, base={"key_fact_recall": 80.0},
                        tuned={"key_fact_recall": 30.0}, delta={"key_fact_recall": -50.0})
    metrics = _with_facts(run, 20.0, 60.0, (25.0, 55.0), slices=[worst])
    verdict = decide(metrics)
    assert verdict.outcome == "better"
    assert verdict.worst_slice == "intent = card_lost (7 examples): key-fact recall 80.0 → 30.0"
    html = write_report(run).read_text(encoding="utf-8")
    assert "Worst slice got worse:</b> intent = card_lost" in html and ">Slices, worst first</h2>" in html
    assert '<td class="num down">80.0 → 30.0 (-50.0)</td>' in html


def test_the_terminal_prints_the_same_verdict(fake_run, tmp_path):
    from r1tune.cli_tables import verdict_line

    run = RunDir(fake_run(tmp_path / "run"))
    line = verdict_line(_with_facts(run, 60.0, 45.0, (-30.0, -2.0)))
    assert line.startswith("[bold red]tuned is worse than base:[/] key-fact recall got worse (-15.0)")
    assert verdict_line(run.read_metrics().model_copy(update={"base": None})) == ""
