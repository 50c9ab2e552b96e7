"""`evaluate`: score base and tuned model on the same test prompts.

Perplexity is exp(mean NLL) over the test answers' tokens, exactly the tokens training learns.
Generation is greedy (deterministic, comparable across runs); reasoning is split off before scoring,
so a `<think>` block never counts against or for ROUGE.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r1tune.config import EvalConfig
from r1tune.data.records import Record
from r1tune.eval.metrics import score_all
from r1tune.models import LoadedModel
from r1tune.models.generation import Generation, generate
from r1tune.models.precision import Precision
from r1tune.models.scoring import answer_loss

log = logging.getLogger(__name__)


def evaluate(
    cfg: EvalConfig,
    loaded: LoadedModel,
    test_records: Sequence[Record],
    out_dir: Path,
    precision: Precision,
    max_seq_len: int,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score the (possibly adapter-wrapped) model, and its base with the adapter disabled, on the test set."""
    records = list(test_records)[: cfg.max_examples] if cfg.max_examples else list(test_records)
    if not records:
        raise ValueError("the test split is empty: nothing to evaluate (check data.test_ratio or test_sources)")
    model, renderer = loaded.model, loaded.renderer
    examples = [renderer.render_training(r, max_seq_len) for r in records]
    prompts = [renderer.render_prompt(r.prompt_messages) for r in records]
    references = [r.answer.content for r in records]
    variants: list[tuple[str, Any]] = [("tuned", contextlib.nullcontext)]
    if cfg.compare_base and hasattr(model, "disable_adapter"):
        variants.append(("base", model.disable_adapter))
    results: dict[str, Any] = {"n_examples": len(records)}
    generations: dict[str, list[Generation]] = {}
    for name, context in variants:
        with context():
            loss = answer_loss(model, examples, renderer.tokenizer.pad_token_id, cfg.batch_size, precision)
            gens = _generate_with_progress(name, model, renderer, prompts, cfg, precision, show_progress)
        scores = score_all([g.answer for g in gens], references)
        generations[name] = gens
        results[name] = {
            "perplexity": loss.perplexity,
            "answer_nll": loss.mean_nll,
            "answer_tokens": loss.tokens,
            **{k: v for k, v in scores.items() if k != "per_example"},
            "unfinished": sum(g.finish_reason == "length" for g in gens),
            "mean_new_tokens": sum(g.num_tokens for g in gens) / len(gens),
            "seconds_per_answer": sum(g.seconds for g in gens) / len(gens),
        }
        results[name]["per_example_rougeL"] = [e["rougeL"] for e in scores["per_example"]]
    if "base" in results:
        results["delta"] = {
            "perplexity_change_pct": 100.0 * (results["tuned"]["perplexity"] / results["base"]["perplexity"] - 1),
            "rougeL": results["tuned"]["rougeL"] - results["base"]["rougeL"],
        }
    _write_samples(out_dir / "samples.jsonl", records, generations, results)
    return results


def _generate_with_progress(name, model, renderer, prompts, cfg, precision, show_progress) -> list[Generation]:
    if not show_progress:
        return generate(model, renderer, prompts, cfg.max_new_tokens, batch_size=cfg.batch_size, precision=precision)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]generate ({name})"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task(name, total=len(prompts))
        return generate(model, renderer, prompts, cfg.max_new_tokens, batch_size=cfg.batch_size,
                        precision=precision, on_batch=lambda n: bar.update(task, advance=n))


def _write_samples(path: Path, records: list[Record], generations: dict[str, list[Generation]],
                   results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, record in enumerate(records):
            row: dict[str, Any] = {
                "id": record.id,
                "source": record.source,
                "prompt": record.prompt_messages[-1].content,
                "reference": record.answer.content,
            }
            for name, gens in generations.items():
                row[name] = {"answer": gens[i].answer, "reasoning": gens[i].reasoning,
                             "finish_reason": gens[i].finish_reason,
                             "rougeL": results[name]["per_example_rougeL"][i]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
