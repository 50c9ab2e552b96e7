"""`report.html`: one self-contained page (inline SVG, no network) that a manager can read."""

from __future__ import annotations

import io
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from r1tune.rundir import RunDir

METRIC_ROWS = [
    ("perplexity", "perplexity on test answers", "lower", "how surprised the model is by the reference answers"),
    ("rougeL", "ROUGE-L", "higher", "overlap of the generated answer with the reference (0–100)"),
    ("rouge1", "ROUGE-1", "higher", "word/character overlap (0–100)"),
    ("bleu", "BLEU", "higher", "n-gram precision against the reference (0–100)"),
    ("chrf", "chrF", "higher", "character n-gram F-score (0–100)"),
    ("mean_new_tokens", "answer length (tokens)", "none", "average generated length"),
    ("unfinished", "answers cut by the token limit", "lower", "answers that hit eval.max_new_tokens"),
]


def write_report(run: RunDir) -> Path:
    """Render the run's report from the files in its folder."""
    import jinja2

    metrics = _read_json(run.metrics)
    samples = _read_jsonl(run.eval / "samples.jsonl")
    context: dict[str, Any] = {
        "info": run.read_info(),
        "cfg": run.load_config(),
        "m": metrics,
        "data": _read_json(run.data / "data_report.json"),
        "train": _read_json(run.train / "train_summary.json"),
        "rows": METRIC_ROWS,
        "loss_svg": _loss_curve_svg(_read_jsonl(run.train / "train_metrics.jsonl")),
        "samples": _extremes(samples),
        "run_path": str(run.path),
        "fmt": lambda v: f"{v:.2f}" if isinstance(v, float) else str(v),
    }
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    template = env.from_string(resources.files("r1tune.eval").joinpath("report.html.j2").read_text("utf-8"))
    run.report.write_text(template.render(**context), encoding="utf-8")
    return run.report


def _extremes(samples: list[dict], k: int = 3) -> list[dict]:
    """The k samples where tuning gained most and the k where it gained least."""
    if not samples or "base" not in samples[0]:
        return samples[: 2 * k]
    ranked = sorted(samples, key=lambda s: s["tuned"]["rougeL"] - s["base"]["rougeL"], reverse=True)
    return ranked[:k] + [s for s in ranked[-k:] if s not in ranked[:k]]


def _loss_curve_svg(history: list[dict]) -> str:
    if not history:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=100)
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="training loss", color="#3366cc")
    val = [h for h in history if "val_loss" in h]
    if val:
        ax.plot([h["step"] for h in val], [h["val_loss"] for h in val], "o-", label="validation loss", color="#dd7700")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("answer-token loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)  # drop RDF boilerplate
    return svg[svg.index("<svg"):]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
