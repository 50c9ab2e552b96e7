"""The model card (`README.md`) of an export: what the model is, what it was trained on, how it scored, how
to prompt it, and what it is not for, written from the run's typed files so it cannot drift from them."""

from __future__ import annotations

from typing import Any

from r1tune.artifacts import ArtifactError, ExportProvenance
from r1tune.rundir import RunDir


def model_card(run: RunDir, provenance: ExportProvenance, built: Any, check: dict[str, Any] | None) -> str:
    """`built`: what export/formats.build wrote (its storage, files and serve command)."""
    cfg = run.load_config()
    parts = [
        f"# {cfg.project.name}: fine-tuned {provenance.base_model}\n",
        f"Exported by r1tune {provenance.r1tune_version} from run `{run.run_id}` ({provenance.kind}, stored as "
        f"{built.stored}). " + _how_to_load(built) + "\n",
        "## How to prompt it\n",
        f"- chat format: `{provenance.chat_format}`; reasoning mode: `{provenance.reasoning}`",
        f"- system prompt used in training: {_system(cfg)}",
        f"- sampling of the base preset: {_sampling(run)}\n",
        *_data(run), *_training(cfg, run), *_evaluation(run), *_verification(check),
        "## Intended use and limits\n",
        f"- Trained for: {cfg.project.name}, on the data above; outside that domain it is the base model at best.",
        "- Personal data was masked before training when `data.pii` was enabled (see the data summary); masking "
        "finds most, not all, personal data.",
        "- Evaluated on the held-out split only; check the slices and red-team results before deploying.\n",
    ]
    return "\n".join(parts)


def _how_to_load(built: Any) -> str:
    if built.gguf_file:
        return (f"Run it with llama.cpp (`{built.serve_command}`): the tokenizer and chat template are inside "
                "the file." + (" For Ollama: `ollama create NAME -f Modelfile`." if "ollama" in built.serve_command
                               else ""))
    if built.model_dir == "adapter" or built.stored == "4bit" or "vllm" in (built.serve_command or ""):
        return f"Serve it with vLLM: `{built.serve_command}` (also in `vllm-serve.sh` where present)."
    return ("Load it with `AutoModelForCausalLM.from_pretrained(folder)`, or serve it with `r1tune serve` "
            "(model name: this folder), which prompts it exactly as it was trained.")


def _system(cfg: Any) -> str:
    systems = {s.system for s in cfg.data.sources if s.system}
    return " / ".join(f"`{s}`" for s in sorted(systems)) if systems else "the base preset's default"


def _sampling(run: RunDir) -> str:
    from r1tune.export.formats import preset_sampling

    sampling = preset_sampling(run)
    return ", ".join(f"{k} {v}" for k, v in sampling.items()) if sampling else "the model's defaults"


def _data(run: RunDir) -> list[str]:
    try:
        report = run.read_data_report()
    except ArtifactError:
        return ["## Data\n", "No data report in the run folder.\n"]
    f = report.funnel
    lines = ["## Data\n", f"- records read {f.read}, usable {f.usable}: train {f.train}, val {f.val}, test {f.test}",
             f"- personal data masked: {report.pii.by_type or 'none found'}"]
    lines += [f"- source `{path}`: {info.get('records')} records, sha256 `{info.get('sha256', '')[:16]}…`"
              for path, info in report.sources.items()]
    lines += [f"- warning: {w}" for w in report.warnings]
    return [*lines, ""]


def _training(cfg: Any, run: RunDir) -> list[str]:
    t = cfg.train
    lines = ["## Training\n", f"- method `{t.method}`, lr {t.lr}, epochs {t.epochs}, batch size {t.batch_size}, "
             f"max_seq_len {t.max_seq_len}, LoRA rank {t.lora_rank}, alpha {t.lora_alpha}"]
    try:
        summary = run.read_train_summary()
        lines.append(f"- {summary.steps} steps in {summary.seconds:.0f} s ({summary.precision}); final validation "
                     f"loss {summary.val_loss}")
    except ArtifactError:
        lines.append("- no training summary in the run folder")
    return [*lines, ""]


def _evaluation(run: RunDir) -> list[str]:
    from r1tune.eval.report import metric_rows
    from r1tune.eval.verdict import decide

    try:
        metrics = run.read_metrics()
    except ArtifactError:
        return ["## Evaluation\n", "The run was not evaluated.\n"]
    verdict = decide(metrics)
    lines = ["## Evaluation\n", f"On {metrics.n_examples} held-out examples: "
             + (f"**{verdict.outcome}** than the base model." if verdict else "no base comparison."), "",
             "| metric | base | tuned | change | 95% CI |", "|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['base']} | {r['tuned']} | {r['change']} | {r['ci']} |" for r in metric_rows(metrics)]
    if metrics.redteam:
        summary = metrics.redteam
        lines.append(f"\nRed-team probes passed: tuned {summary.get('tuned', {}).get('passed')} of {summary.get('n')}, "
                     f"base {summary.get('base', {}).get('passed')}.")
    return [*lines, ""]


def _verification(check: dict[str, Any] | None) -> list[str]:
    if check is None:
        return ["## Verification\n", "Not verified (`--no-verify`).\n"]
    if not check.get("n"):
        return ["## Verification\n", f"Not verified: {check.get('reason')}.\n"]
    if check.get("method"):
        return ["## Verification\n", f"{check['n']} files checked, {check['method']}: "
                f"**{'passed' if check['passed'] else 'FAILED'}** {'; '.join(check['problems'])}\n"]
    lines = _comparison("Loaded back", check)
    if check.get("llama_cpp"):
        lines += _comparison("Run by llama.cpp (llama-cpp-python)", check["llama_cpp"])
    return ["## Verification\n", *lines]


def _comparison(how: str, check: dict[str, Any]) -> list[str]:
    return [f"{how} and compared with the run on {check['n']} `{check['split']}` prompts: "
            f"greedy answers agree on {100 * check['greedy_agreement']:.0f}% of their length "
            f"({100 * check['identical_answers']:.0f}% identical), answer perplexity "
            f"{check['perplexity_run']:.3f} → {check['perplexity_export']:.3f} "
            f"({check['perplexity_change_pct']:+.2f}%, tolerance ±{check['tolerance_pct']}%): "
            f"**{'passed' if check['passed'] else 'FAILED'}**"
            + ("" if check["passed"] else " — " + "; ".join(check["problems"])) + ".\n"]
