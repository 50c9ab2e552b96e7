"""Eval stage: base-vs-tuned metrics with confidence intervals, red-team probes, an optional pairwise judge,
human-evaluation sheets, the self-contained report.html and run-to-run comparison."""

from r1tune.eval.compare import compare_runs
from r1tune.eval.evaluate import evaluate
from r1tune.eval.human import export_sheets, import_sheets
from r1tune.eval.judge import run_judge
from r1tune.eval.redteam import judge_answer, load_probes
from r1tune.eval.report import write_report
from r1tune.eval.testset import check_eval_config

__all__ = ["check_eval_config", "compare_runs", "evaluate", "export_sheets", "import_sheets", "judge_answer",
           "load_probes", "run_judge", "write_report"]
