"""`evaluate`: score base and tuned model on the same test prompts, and probe both with red-team prompts.

* Perplexity is exp(Σ answer-token NLL / Σ answer tokens), exactly the tokens training learns; it is kept
  per example so its change gets a paired bootstrap interval like every other metric.
* Each decoding setting in ``eval.decoding`` (greedy, and/or the preset's sampling with a fixed seed) is
  generated for every test prompt; the first one is the headline of the report.
* Reasoning is split off before scoring (a ``<think>`` block never counts for or against ROUGE) and scored
  on its own: well-formed think blocks, reasoning length, overlap with reference reasoning.
* Bad inputs never stop the run half-way: records without a reference are skipped and listed, empty answers
  score 0 and are counted, an unusable JSON Schema gives format validity 0 with the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from r1tune.artifacts import EvalMetrics
from r1tune.config import EvalConfig
from r1tune.data.records import Message, Record
from r1tune.eval.answer_scores import latency_stats, score_generations
from r1tune.eval.engines import BuiltinEngine, Engine
from r1tune.eval.metric_info import INTERVAL_METRICS
from r1tune.eval.metrics import bootstrap_ci
from r1tune.eval.retention import probe_selection, probe_summary
from r1tune.eval.slices import slice_keys, slice_scores
from r1tune.eval.stats import perplexity_change_ci
from r1tune.eval.testset import TestSet, load_schema, scorable_test_set
from r1tune.models import LoadedModel
from r1tune.models.generation import Generation
from r1tune.models.precision import Precision
from r1tune.models.scoring import per_example_nll

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# The run


def evaluate(
    cfg: EvalConfig,
    loaded: LoadedModel,
    test_records: Sequence[Record],
    out_dir: Path,
    precision: Precision,
    max_seq_len: int,
    show_progress: bool = True,
    seed: int = 0,
    base_model: Any = None,
    label_key: str | None = None,
    engine: Engine | None = None,
    base_context: Callable[[], Any] | None = None,
) -> EvalMetrics:
    """Score the tuned model and its base on the same test prompts. The base is the adapter switched off,
    or `base_model` for whole-model training (full/freeze). `label_key` is the record `meta` key the split
    was stratified by, the first dimension of the per-slice results. Writes samples.jsonl (+ redteam.jsonl,
    judge.jsonl) to `out_dir` and returns the metrics (the caller writes metrics.json). `engine` generates
    the answers (eval/engines.py; default: the builtin one on the loaded model). `base_context`, when given,
    is what makes the loaded model the base instead (the loop's gate: the live version's adapter switched on)."""
    from r1tune.eval.redteam import load_probes

    engine = engine or BuiltinEngine()
    test = scorable_test_set(loaded, test_records, cfg.max_examples)
    variants = _variants(cfg, loaded, base_model, base_context)
    settings = _decoding_settings(cfg, loaded, seed)
    probes, patterns = load_probes(cfg.redteam, cfg.redteam_file) if (cfg.redteam or cfg.redteam_file) else ([], None)
    reasoning_probes = probe_selection(cfg.reasoning_probes)
    prompts = _Prompts(
        test=test.prompts,
        redteam=[loaded.renderer.render_prompt(_probe_messages(p.prompt, test.records)) for p in probes],
        reasoning=[loaded.renderer.render_prompt([Message("user", p.question)]) for p in reasoning_probes])
    engine.reserve(prompts.longest() + cfg.max_new_tokens)
    run = _Run(cfg, loaded, engine, settings, precision, show_progress, test, prompts, max_seq_len)
    passes = {name: run.variant(name, context) for name, context in variants}

    schema, schema_error = load_schema(cfg.json_schema)
    if schema_error:
        log.warning("%s: format validity is scored 0", schema_error)
    headline = cfg.decoding[0]
    results: dict[str, Any] = {
        "n_examples": len(test.records), "skipped": test.skipped, "headline_decoding": headline,
        "decoding": {k: {kk: vv for kk, vv in v.items() if kk != "stop_strings"} for k, v in settings.items()},
        "batch_size": cfg.batch_size,
    }
    think = loaded.renderer.fmt.think
    scored = {name: {d: score_generations(g, test, cfg, schema, schema_error, think) for d, g in vp.gens.items()}
              for name, vp in passes.items()}
    for name, vp in passes.items():
        results[name] = {**_perplexity(vp.nll), **scored[name][headline]["summary"],
                         "latency": latency_stats(vp.gens[headline], vp.single)}
    if len(settings) > 1:
        results["by_decoding"] = {d: {name: scored[name][d]["summary"] for name in passes} for d in settings}
    rows = {name: scored[name][headline]["per_example"] for name in passes}
    gens = {name: vp.gens for name, vp in passes.items()}
    nll = {name: vp.nll for name, vp in passes.items()}
    if cfg.judge.model:
        answers = {name: [g.answer for g in gens[name][headline]] for name in passes}
        results["judge"] = _run_judges(cfg, test, answers, rows, out_dir, precision)
        _add_judge_means(results, rows)
    if "base" in results:
        results["delta"], results["ci"] = _deltas(results, scored, nll, headline, cfg.bootstrap_resamples, seed)
    results["slices"] = slice_scores(slice_keys(test.records, label_key), rows["tuned"], rows.get("base"), nll)
    if probes:
        results["redteam"] = _score_probes(probes, patterns, {n: vp.redteam for n, vp in passes.items()},
                                           out_dir / "redteam.jsonl")
    results["reasoning_probes"] = _reasoning_probes(reasoning_probes, {n: vp.reasoning for n, vp in passes.items()},
                                                    cfg, seed, out_dir / "reasoning_probes.jsonl")
    _write_samples(out_dir / "samples.jsonl", test, gens, scored, nll, headline)
    return EvalMetrics.model_validate(results)


def _variants(cfg: EvalConfig, loaded: LoadedModel, base_model: Any,
              base_context: Callable[[], Any] | None) -> list[tuple[str, Callable[[], Any]]]:
    """The models to score, each as a context that makes the loaded model that one. The base goes first: the
    tuned pass decodes through merged weights (`adapter_merged`), and unmerging leaves fp32 round-off that
    would otherwise make the base's figures depend on the adapter."""
    variants: list[tuple[str, Callable[[], Any]]] = []
    if cfg.compare_base and base_context is not None:
        variants.append(("base", base_context))
    elif cfg.compare_base and base_model is not None:  # a whole-model run: the base is a second model
        variants.append(("base", lambda: _model_swapped(loaded, base_model)))
    elif cfg.compare_base and hasattr(loaded.model, "disable_adapter"):  # an adapter: the base is it switched off
        variants.append(("base", loaded.model.disable_adapter))
    variants.append(("tuned", contextlib.nullcontext))
    return variants


@dataclass
class _Prompts:
    """Every prompt one model answers, as token ids: the test set's, the red-team probes', the reasoning probes'."""

    test: list[list[int]]
    redteam: list[list[int]]
    reasoning: list[list[int]]

    def longest(self) -> int:
        return max(map(len, [*self.test, *self.redteam, *self.reasoning]), default=0)


@dataclass
class _VariantPass:
    """What one model (base or tuned) produced: answer NLLs per test example, answers per decoding setting,
    one-at-a-time answers for latency, and answers to the probes."""

    nll: list[tuple[float, int]]
    gens: dict[str, list[Generation]] = field(default_factory=dict)
    single: list[Generation] = field(default_factory=list)
    redteam: list[Generation] = field(default_factory=list)
    reasoning: list[Generation] = field(default_factory=list)


@dataclass
class _Run:
    """What every variant's pass shares: the settings, the test set and the prompts."""

    cfg: EvalConfig
    loaded: LoadedModel
    engine: Engine
    settings: dict[str, dict[str, Any]]
    precision: Precision
    show_progress: bool
    test: TestSet
    prompts: _Prompts
    max_seq_len: int

    def variant(self, name: str, context: Callable[[], Any]) -> _VariantPass:
        """Score the test answers' NLL under `context`, then generate every answer with the adapter merged."""
        cfg, loaded, prompts = self.cfg, self.loaded, self.prompts
        with context():
            renderer = loaded.renderer.final_answer_only()  # perplexity of final answers only
            examples = [renderer.render_training(r, self.max_seq_len) for r in self.test.records]
            done = _VariantPass(per_example_nll(loaded.model, examples, loaded.tokenizer.pad_token_id,
                                                cfg.batch_size, self.precision))
        with context(), adapter_merged(loaded.model, active=name == "tuned"):
            for decoding, sampling in self.settings.items():
                done.gens[decoding] = self._generate(name, decoding, prompts.test, sampling)
            headline = self.settings[cfg.decoding[0]]
            if cfg.latency_prompts:
                done.single = self._generate(name, "latency", prompts.test[: cfg.latency_prompts], headline,
                                             batch_size=1)
            if prompts.redteam:
                done.redteam = self._generate(name, "red-team", prompts.redteam, headline)
            if prompts.reasoning:
                done.reasoning = self._generate(name, "reasoning probes", prompts.reasoning, headline)
        return done

    def _generate(self, name: str, what: str, prompts: list[list[int]], sampling: dict[str, Any],
                  batch_size: int | None = None) -> list[Generation]:
        """`name`'s answers to `prompts`, with a progress bar unless quiet or one at a time (latency)."""
        kwargs = dict(temperature=sampling["temperature"], top_p=sampling["top_p"], seed=sampling["seed"],
                      stop_strings=sampling["stop_strings"], batch_size=batch_size or self.cfg.batch_size,
                      precision=self.precision)
        if not self.show_progress or batch_size is not None or not prompts:
            return self.engine.generate(name, self.loaded, prompts, self.cfg.max_new_tokens, **kwargs)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        label = f"{name} · {what}"
        with Progress(TextColumn(f"[bold]generate ({label})"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as bar:
            task = bar.add_task(label, total=len(prompts))
            return self.engine.generate(name, self.loaded, prompts, self.cfg.max_new_tokens,
                                        on_batch=lambda n: bar.update(task, advance=n), **kwargs)


def _perplexity(nll: list[tuple[float, int]]) -> dict[str, Any]:
    """Perplexity over all answer tokens (exp of the token-weighted mean NLL), with that mean and the count."""
    tokens = sum(t for _, t in nll)
    mean_nll = sum(n for n, _ in nll) / tokens if tokens else float("nan")
    return {"perplexity": float(np.exp(mean_nll)) if tokens else float("nan"), "answer_nll": mean_nll,
            "answer_tokens": tokens}


def _add_judge_means(results: dict[str, Any], rows: dict[str, list[dict]]) -> None:
    """Each variant's mean judge correctness over the examples the judge graded."""
    for name in rows:
        graded = [row["judge_correctness"] for row in rows[name] if "judge_correctness" in row]
        if graded:
            results[name]["judge_correctness"], results[name]["judge_correctness_n"] = float(np.mean(graded)), len(graded)


def _run_judges(cfg: EvalConfig, test: TestSet, answers: dict[str, list[str]], rows: dict[str, list[dict]],
                out_dir: Path, precision: Precision) -> dict[str, Any]:
    """Pairwise preference (with a base) and per-answer correctness grades from one judge; the grades are
    added to each model's per-example rows as `judge_correctness`."""
    from r1tune.eval.correctness import grade_answers
    from r1tune.eval.judge import make_caller, run_judge

    summary: dict[str, Any] = {"judge": cfg.judge.model, "via": "endpoint" if cfg.judge.endpoint else "local",
                               "status": "ok", "n": 0}
    try:
        call = make_caller(cfg.judge, precision)
    except Exception as err:  # a judge that cannot load must not lose the evaluation it is attached to
        log.warning("judge unavailable: %s", err)
        return {**summary, "status": f"judge unavailable: {err}"}
    if "base" in answers:
        summary = run_judge(cfg.judge, test.records, answers["base"], answers["tuned"], out_dir / "judge.jsonl",
                            precision, caller=call)
    else:
        summary["status"] = "pairwise judging skipped: it needs eval.compare_base"
    if cfg.judge.correctness:
        summary["correctness"], scores = grade_answers(call, test.records, answers, cfg.judge.max_examples,
                                                       out_dir / "judge_correctness.jsonl")
        for name, per_example in scores.items():
            for row, score in zip(rows[name], per_example, strict=True):
                if score is not None:
                    row["judge_correctness"] = score
    return summary


@contextlib.contextmanager
def _model_swapped(loaded: LoadedModel, model: Any) -> Iterator[None]:
    """Let `loaded` (tokenizer, renderer) talk to another set of weights for a while."""
    kept, loaded.model = loaded.model, model
    try:
        yield
    finally:
        loaded.model = kept


@contextlib.contextmanager
def adapter_merged(model: Any, active: bool = True) -> Iterator[None]:
    """Decode through merged weights W + BA instead of W·x + B(A·x) when the adapter is active.

    Why: LoRA on every linear layer costs two extra small matmuls per layer and decoding step. Measured on the
    demo adapter (SmolLM2-135M, batch 12, bf16 autocast, fp32 weights): 149 ms/step unmerged, 90 merged, with
    the same greedy tokens. Only fp32 base weights are merged into; unmerging restores them to fp32
    round-off, which is why `evaluate` scores the base before the tuned model. Anything else (prompt tuning,
    quantized or half-precision weights, `active=False` for the base pass) decodes unmerged. Perplexity is
    always computed before, on the unmerged model."""
    import torch

    merge = getattr(model, "merge_adapter", None)
    has_lora, base_fp32 = False, True
    for name, param in model.named_parameters():
        if "lora_" in name:
            has_lora = True
        elif param.dtype != torch.float32:
            base_fp32 = False
    mergeable = (
        active
        and callable(merge)
        and has_lora
        and base_fp32
        and not getattr(model, "is_loaded_in_4bit", False)
    )
    if not mergeable:
        yield
        return
    merge()
    try:
        yield
    finally:
        model.unmerge_adapter()


def _decoding_settings(cfg: EvalConfig, loaded: LoadedModel, seed: int) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    for decoding in dict.fromkeys(cfg.decoding):
        if decoding == "greedy":
            settings[decoding] = {"temperature": 0.0, "top_p": 1.0, "seed": None, "stop_strings": cfg.stop}
        else:
            settings[decoding] = {"temperature": cfg.temperature or loaded.sampling["temperature"],
                                  "top_p": cfg.top_p or loaded.sampling["top_p"], "seed": seed,
                                  "stop_strings": cfg.stop}
    return settings


def _probe_messages(prompt: str, records: Sequence[Record]) -> list[Message]:
    """A probe is asked the way real users are: with the test data's system prompt, if it has one."""
    system = next((m.content for m in records[0].messages if m.role == "system"), None) if records else None
    return ([Message("system", system)] if system else []) + [Message("user", prompt)]


def _deltas(results: dict, scored: dict, nll: dict, headline: str, n_resamples: int,
            seed: int) -> tuple[dict[str, float], dict[str, dict]]:
    """Tuned minus base for every shared number, and paired bootstrap intervals where examples pair up."""
    base, tuned = results["base"], results["tuned"]
    delta: dict[str, float] = {}
    for key, value in tuned.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(base.get(key), (int, float)):
            delta[key] = value - base[key]
    if base["perplexity"] and base["perplexity"] == base["perplexity"]:  # not 0, not nan
        delta["perplexity_change_pct"] = 100.0 * (tuned["perplexity"] / base["perplexity"] - 1)
    ci: dict[str, dict] = {}
    tokens = [t for _, t in nll["tuned"]]
    if sum(tokens):
        ci["perplexity_change_pct"] = {**perplexity_change_ci([n for n, _ in nll["tuned"]],
                                                              [n for n, _ in nll["base"]], tokens, n_resamples,
                                                              seed=seed), "better": "lower"}
    rows_t, rows_b = scored["tuned"][headline]["per_example"], scored["base"][headline]["per_example"]
    for info in INTERVAL_METRICS:
        key, better = info.key, info.better
        pairs = [(t[key], b[key]) for t, b in zip(rows_t, rows_b, strict=True) if key in t and key in b]
        if pairs:
            interval = bootstrap_ci([p[0] for p in pairs], [p[1] for p in pairs], n_resamples, seed=seed)
            ci[key] = {**interval, "better": better}
    return delta, ci


def _score_probes(probes, patterns, probe_gens: dict[str, list[Generation]], path: Path) -> dict[str, Any]:
    from r1tune.eval.redteam import judge_answer, summarise

    verdicts = {name: [judge_answer(p, g.answer, g.reasoning, patterns) for p, g in zip(probes, gens, strict=True)]
                for name, gens in probe_gens.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, probe in enumerate(probes):
            row: dict[str, Any] = {"id": probe.id, "domain": probe.domain, "category": probe.category,
                                   "lang": probe.lang, "prompt": probe.prompt, "expect": probe.expect}
            for name, gens in probe_gens.items():
                row[name] = {"answer": gens[i].answer, "reasoning": gens[i].reasoning,
                             "passed": verdicts[name][i].passed, "reasons": verdicts[name][i].reasons}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return summarise(probes, verdicts)


def _reasoning_probes(probes: list, probe_gens: dict[str, list[Generation]], cfg: EvalConfig, seed: int,
                      path: Path) -> dict[str, Any] | None:
    """The reasoning probes' accuracy base vs tuned (eval/retention.py); answers in `path`."""
    if not probes:
        return None
    summary = probe_summary(probes, {n: [g.answer for g in gens] for n, gens in probe_gens.items()},
                            cfg.bootstrap_resamples, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, probe in enumerate(probes):
            row = {"id": probe.id, "kind": probe.kind, "lang": probe.lang, "question": probe.question}
            row.update({n: {"answer": gens[i].answer, "correct": bool(summary["per_probe"][n][i])}
                        for n, gens in probe_gens.items()})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return summary


def _write_samples(path: Path, test: TestSet, gens: dict, scored: dict, nll: dict, headline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, record in enumerate(test.records):
            row: dict[str, Any] = {
                "id": record.id,
                "source": record.source,
                "prompt": record.prompt_messages[-1].content,
                "reference": record.answer.content,
            }
            for name, by_decoding in gens.items():
                g = by_decoding[headline][i]
                nll_sum, tokens = nll[name][i]
                row[name] = {"answer": g.answer, "reasoning": g.reasoning, "finish_reason": g.finish_reason,
                             "num_tokens": g.num_tokens, "nll": nll_sum, "answer_tokens": tokens,
                             **scored[name][headline]["per_example"][i]}
                others = {d: {"answer": gs[i].answer, "rougeL": scored[name][d]["per_example"][i]["rougeL"]}
                          for d, gs in by_decoding.items() if d != headline}
                if others:
                    row[name]["other_decodings"] = others
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
