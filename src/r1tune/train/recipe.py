"""The training recipe, top to bottom: render → choose what trains → plan batches → optimise, validate and
checkpoint → keep the best → save.

Loss is taken on answer tokens only (the renderer's mask) and the vocabulary projection runs only there;
batches group examples of similar length (or pack them into rows with no attention across their borders);
matmuls run under bf16 autocast where the hardware supports it, the frozen base held in the compute dtype
(models/device.py). Every optimiser step is normalised by the number of answer tokens in the whole step
(all micro-batches, all processes), so the update does not depend on how the step is split up. A run
killed at any point resumes from its last checkpoint exactly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from r1tune.artifacts import TRAIN_SUMMARY_FILE, TrainSummary, write_artifact
from r1tune.config import TrainConfig
from r1tune.data.records import Record, write_json_lines
from r1tune.errors import ConfigError, DataError
from r1tune.models.attention import training_attention
from r1tune.models.chat_format import ChatRenderer, Rendered
from r1tune.models.cpu_allocator import keep_freed_memory
from r1tune.models.device import on_device
from r1tune.models.precision import adapter_input_casts_skipped, autocast, resolve_precision
from r1tune.models.scoring import answer_loss
from r1tune.train import checkpoint as ckpt
from r1tune.train import distributed
from r1tune.train.batching import (
    BatchPlan,
    MicroBatch,
    collate_micro_batch,
    curriculum_order,
    trained_targets,
)
from r1tune.train.distributed import DEEPSPEED_TAG, Runtime
from r1tune.train.methods import apply_method, saves_whole_model, trainable_named_parameters
from r1tune.train.sharding import full_values
from r1tune.train.tracking import MetricsLog, print_summary

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# Settings that shape the trajectory: a resumed run must have the same ones to continue exactly.
TRAJECTORY_FIELDS = tuple(name for name in TrainConfig.model_fields if name not in TrainConfig.BOOKKEEPING_FIELDS)


class TrainResult(TrainSummary):
    """What `train` returns: the summary written to train_summary.json, plus the per-step history (kept in
    train_metrics.jsonl, not in the summary)."""

    history: list[dict[str, Any]] = Field(default_factory=list, exclude=True)

    def summary(self) -> TrainSummary:
        return TrainSummary.model_validate(self.model_dump())


@dataclass
class TrainState:
    """Progress that a checkpoint carries besides tensors."""

    step: int = 0
    trained_tokens: int = 0
    real_tokens: int = 0
    compute_seconds: float = 0.0
    eval_seconds: float = 0.0
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    cfg: TrainConfig,
    model: PreTrainedModel,
    renderer: ChatRenderer,
    train_records: Sequence[Record],
    val_records: Sequence[Record],
    out_dir: Path,
    seed: int,
    default_target_modules: Sequence[str],
    show_progress: bool = True,
    *,
    resume: bool = False,
    teacher_model: PreTrainedModel | None = None,
    runtime: Runtime | None = None,
) -> tuple[PreTrainedModel, TrainResult]:
    """Fine-tune `model` on `train_records` with `cfg.method`; returns the trained model and a summary.

    With `resume`, continue from the newest complete checkpoint in `out_dir/checkpoints`. `runtime`: one
    started before `model` loaded (`start_runtime`), as ZeRO-3 needs to partition the weights as they load.
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup


    precision = resolve_precision(cfg.precision)
    runtime = runtime or distributed.start_runtime(precision)
    if runtime.device.type == "cpu":
        keep_freed_memory()  # activations reuse pages instead of faulting fresh ones in every step
    torch.manual_seed(seed)
    t_start = time.perf_counter()

    # 1. Render every record to ids + trained mask; truncation is counted and reported, never silent.
    examples, kept, truncated, skipped = render_all(renderer, train_records, cfg.max_seq_len)
    val_examples = render_all(renderer, val_records, cfg.max_seq_len)[0]
    if not examples:
        raise ConfigError("no training example keeps any answer token after truncation",
                          hint="raise train.max_seq_len")
    if cfg.early_stopping_patience and not val_examples:
        raise ConfigError("train.early_stopping_patience needs a validation split, and it is empty",
                          hint="set data.val_ratio > 0 or unset train.early_stopping_patience")

    units = None
    if cfg.stage != "sft":  # preference units: pairs, thumbs-rated and plain answers
        from r1tune.train.preference import build_units

        units, kept = build_units(cfg.stage, renderer, train_records, examples, kept, cfg.max_seq_len)
        examples = [u.chosen for u in units]

    # 2. The method decides which parameters train.
    model = apply_method(model, cfg, default_target_modules)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    if not runtime.reads_weights:  # an FSDP process without the weights: rank 0's arrive as it shards
        distributed.give_storage_to_meta_trainables(model, runtime.device)

    # 3. The batch plan: packed (or length-grouped) micro-batches, in curriculum order when asked.
    difficulties = None
    if cfg.curriculum == "difficulty":
        difficulties = [_difficulty(train_records[i], cfg.difficulty_key) for i in kept]
    plan = BatchPlan(examples, cfg.batch_size, cfg.grad_accum * runtime.world_size, seed, cfg.packing,
                     cfg.max_seq_len, curriculum_order(examples, difficulties, cfg.curriculum, seed))
    total_steps = cfg.max_steps or max(1, math.ceil(plan.steps_per_epoch * cfg.epochs))

    # 4. AdamW (no decay on biases and norms); linear warm-up, then cosine decay to zero.
    params = trainable_named_parameters(model)
    optimizer = _adamw(params, cfg, runtime.device.type)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(total_steps * cfg.warmup_ratio), total_steps)
    objective, optimizer = runtime.prepare(_objective(model, cfg, teacher_model, runtime.device), optimizer)
    params = trainable_named_parameters(runtime.unwrap(objective).model)  # FSDP swaps in sharded parameters
    pad_id = renderer.tokenizer.pad_token_id
    feed = _step_feed(units, plan, runtime.unwrap(objective).model, pad_id, cfg.batch_size, precision)

    # 5. Resume: weights, optimiser, schedule, random state and progress from the newest checkpoint.
    checkpoints = out_dir / "checkpoints"
    fingerprint = _fingerprint(cfg, feed.fingerprinted, runtime.world_size)
    state, resumed_from = TrainState(), None
    if resume:
        state = _resume(checkpoints, params, optimizer, scheduler, fingerprint, runtime)
        resumed_from = state.step
    elif ckpt.complete_checkpoints(checkpoints):
        raise ConfigError(f"{checkpoints} holds checkpoints of an earlier run of this folder",
                          hint="pass --resume to continue it, or delete that folder to start over")
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_staging(checkpoints)
        write_skipped(out_dir / SKIPPED_FILE, skipped)

    # 6. The loop: one optimiser step per iteration; validate, checkpoint and log when due.
    metrics = MetricsLog(out_dir, cfg.trackers, cfg.model_dump(mode="json"), state.step, enabled=runtime.is_main)
    neftune = _start_neftune(model, cfg.neftune_alpha)
    with (_progress(show_progress and runtime.is_main, total_steps, state.step) as bar,
          adapter_input_casts_skipped(model, precision), training_attention(model, precision, runtime.device.type)):
        while state.step < total_steps and not state.stopped_early:
            row = _optimizer_step(objective, optimizer, scheduler, plan, feed, state, runtime, cfg, precision)
            state.step += 1
            row["epoch"] = round(state.step / plan.steps_per_epoch, 3)
            new_best = False
            if val_examples and _validation_due(cfg, state.step, plan.steps_per_epoch, total_steps):
                started = time.perf_counter()
                row["val_loss"] = answer_loss(model, val_examples, pad_id, cfg.batch_size, precision).mean_nll
                state.eval_seconds += time.perf_counter() - started
                new_best = _track_best(state, row["val_loss"], cfg.early_stopping_patience)
            state.history.append(row)
            metrics.write(row)
            last = state.step == total_steps or state.stopped_early
            if (state.step % cfg.save_every == 0 or (new_best and cfg.keep_best)) and not last:
                _save_checkpoint(checkpoints, state, params, optimizer, scheduler, fingerprint, runtime, cfg)
            bar.advance(row, cfg.log_every)
    if neftune is not None:
        from transformers.integrations.neftune import deactivate_neftune

        deactivate_neftune(model, neftune)

    # 7. Keep the best validated weights, save the result atomically, summarise.
    val_loss = state.history[-1].get("val_loss") if state.history else None
    if cfg.keep_best and state.best_step is not None and state.best_step != state.step:
        ckpt.load_trainable(ckpt.checkpoint_dir(checkpoints, state.best_step), params)
        val_loss = state.best_val_loss
    model.eval()
    accuracy = _preference_accuracy(feed, model, pad_id, cfg.batch_size, precision)
    result_dir = out_dir / ("model" if saves_whole_model(cfg.method) else "adapter")
    whole_state = _whole_state(runtime, objective, params, saves_whole_model(cfg.method))
    if runtime.is_main:
        _save_atomically(runtime.unwrap(objective).model, renderer, result_dir, saves_whole_model(cfg.method),
                         whole_state)
    runtime.barrier()
    metrics.close()
    result = TrainResult(
        result_kind="whole_model" if saves_whole_model(cfg.method) else "adapter", result_dir=result_dir,
        steps=state.step, epochs=round(state.step / plan.steps_per_epoch, 3),
        precision=precision, seconds=round(time.perf_counter() - t_start, 2), trained_tokens=state.trained_tokens,
        truncated=truncated, dropped_empty=len(skipped), val_loss=val_loss, method=cfg.method,
        packing=cfg.packing, fill_rate=round(plan.fill_rate(), 4), real_tokens=state.real_tokens,
        tokens_per_s=round(state.real_tokens / max(state.compute_seconds, 1e-9), 1),
        step_seconds=round(state.compute_seconds, 2), eval_seconds=round(state.eval_seconds, 2),
        best_val_loss=state.best_val_loss, best_step=state.best_step, stopped_early=state.stopped_early,
        resumed_from=resumed_from, processes=runtime.world_size, history=state.history,
        stage=cfg.stage, preference_accuracy=accuracy,
    )
    if runtime.is_main:  # the one writer of train_summary.json; read back through RunDir.read_train_summary
        write_artifact(out_dir / TRAIN_SUMMARY_FILE, result.summary())
        if show_progress:
            print_summary(result)
    return model, result


def _optimizer_step(objective, optimizer, scheduler, plan: BatchPlan, feed: StepFeed, state: TrainState,
                    runtime: Runtime, cfg: TrainConfig, precision: str) -> dict[str, Any]:
    """Accumulate this process's share of the step's micro-batches, then clip and update."""
    import torch

    started = time.perf_counter()
    step_batches = plan.step(state.step)
    in_step = [i for batch in step_batches for row in batch for i in row]
    step_targets = sum(trained_targets(plan.examples[i]) for i in in_step)
    step_units = step_targets if feed.units is None else len(in_step)  # SFT: per answer token; else per unit
    # DDP averages gradients over processes and DeepSpeed divides by its accumulation steps: undo both.
    scale = runtime.world_size * (cfg.grad_accum if runtime.uses_deepspeed else 1) / max(step_units, 1)
    nll_sum = torch.zeros((), device=runtime.device)  # read once a step: no GPU sync after every micro-batch
    real_tokens = 0
    share = _share_of_step(step_batches, runtime.rank, cfg.grad_accum,
                           fill=runtime.world_size > 1 or runtime.uses_deepspeed)
    for index, (batch, weight) in enumerate(share):
        tensors = on_device(feed.collate(batch), runtime.device)
        last = index == len(share) - 1
        with runtime.sync_gradients_on(objective, sync=last), autocast(precision, runtime.device.type):
            nll = objective(tensors)
            runtime.backward(nll * scale * weight)
        nll_sum += nll.detach().float() * weight
        real_tokens += int(weight) * sum(len(plan.examples[i].input_ids) for row in batch for i in row)
    norm = runtime.clip_grad_norm(objective, cfg.max_grad_norm)  # read below, with the loss
    skipped, loss_scale = runtime.optimizer_step(optimizer)
    if not skipped:  # fp16 overflow: the weights did not move, so neither does the schedule
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    nll_total = float(nll_sum)  # waits for all of the step's GPU work, so its time below includes it
    grad_norm = float("nan") if norm is None else float(norm)
    seconds = time.perf_counter() - started
    real_tokens = int(runtime.sum(real_tokens))
    state.trained_tokens += step_targets
    state.real_tokens += real_tokens
    state.compute_seconds += seconds
    return {
        "step": state.step + 1, "loss": runtime.sum(nll_total) / max(step_units, 1),
        "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm, "tokens_per_s": real_tokens / seconds,
        "trained_tokens_per_s": step_targets / seconds, "trained_tokens": state.trained_tokens,
        **_loss_scaling(skipped, loss_scale, precision),
    }


def _loss_scaling(skipped: bool, loss_scale: float | None, precision: str) -> dict[str, Any]:
    """fp16's loss scale after the step (None under DeepSpeed, which keeps its own) and whether overflow
    skipped the step; nothing in bf16 and fp32."""
    if precision != "fp16":
        return {}
    return {"skipped": skipped, **({} if loss_scale is None else {"loss_scale": loss_scale})}


SKIPPED_FILE = "skipped_records.jsonl"


def render_all(
    renderer: ChatRenderer, records: Sequence[Record], max_len: int
) -> tuple[list[Rendered], list[int], int, list[dict[str, str]]]:
    """Render records; returns (examples, their record indices, how many were truncated, the records that
    kept no trained token and were skipped, each with its source and reason)."""
    examples, kept, truncated, skipped = [], [], 0, []
    for index, record in enumerate(records):
        rendered = renderer.render_training(record, max_len)
        truncated += rendered.truncated
        if trained_targets(rendered) == 0:
            prompt = len(renderer.render_prompt(record.prompt_messages))
            reason = (f"no trained token left after truncation to train.max_seq_len={max_len} tokens "
                      f"(the prompt alone is {prompt})")
            skipped.append({"source": record.source, "id": record.id, "reason": reason})
            log.warning("%s: %s; skipped", record.source, reason)
            continue
        examples.append(rendered)
        kept.append(index)
    if truncated:
        log.warning("%d of %d records were longer than train.max_seq_len=%d and were cut",
                    truncated, len(records), max_len)
    return examples, kept, truncated, skipped


def write_skipped(path: Path, skipped: list[dict[str, str]]) -> None:
    """`train/skipped_records.jsonl`: one line per training record that could not train (empty if none)."""
    write_json_lines(skipped, path)


def _difficulty(record: Record, key: str) -> float:
    """`meta[key]` as a number; a missing or non-numeric value is an error naming the record."""
    raw = record.meta.get(key)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise DataError(f"{record.source or record.id}: curriculum: difficulty needs a number in meta.{key}, "
                        f"got {raw!r}", hint="add it to every record, or use train.curriculum: length") from None


def _adamw(params: dict[str, Any], cfg: TrainConfig, device_type: str):
    """AdamW over the trainable parameters. The fused kernel (one pass over all tensors; CPU and CUDA) took
    17 ms per step against the default's 61 ms for the 4.9M LoRA parameters of SmolLM2-135M r16 on this
    project's 2-core CPU, clipping included."""
    import torch

    decay = [p for p in params.values() if p.ndim >= 2]
    no_decay = [p for p in params.values() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device_type in ("cpu", "cuda")
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, fused=fused or None)


def _validation_due(cfg: TrainConfig, step: int, steps_per_epoch: int, total_steps: int) -> bool:
    if step == total_steps:
        return True
    return step % (cfg.eval_every or steps_per_epoch) == 0


def _track_best(state: TrainState, val_loss: float, patience: int | None) -> bool:
    """Record a validation; returns True for a new best. Sets `stopped_early` when patience runs out."""
    if state.best_val_loss is None or val_loss < state.best_val_loss:
        state.best_val_loss, state.best_step, state.evals_without_improvement = val_loss, state.step, 0
        return True
    state.evals_without_improvement += 1
    if patience and state.evals_without_improvement >= patience:
        log.warning("validation loss has not improved for %d evaluations: stopping at step %d (best %.4f at %d)",
                    patience, state.step, state.best_val_loss, state.best_step)
        state.stopped_early = True
    return False


def _fingerprint(cfg: TrainConfig, examples: list[Rendered], world_size: int) -> dict[str, Any]:
    import hashlib

    digest = hashlib.sha256()
    for e in examples:
        digest.update(repr((e.input_ids, e.trained)).encode())
    settings = cfg.model_dump(mode="json", include=set(TRAJECTORY_FIELDS))  # JSON: paths too
    return {"settings": settings, "data_sha256": digest.hexdigest(), "processes": world_size}


def _save_checkpoint(root: Path, state: TrainState, params, optimizer, scheduler, fingerprint, runtime: Runtime,
                     cfg: TrainConfig) -> None:
    staged = ckpt.staging_dir(root, state.step)
    if runtime.is_main:
        staged.mkdir(parents=True, exist_ok=True)
    runtime.barrier()
    ckpt.write_rng_state(staged, runtime.rank)
    if runtime.uses_deepspeed:
        runtime.save_deepspeed_state(staged)
    elif runtime.shards_state:
        ckpt.write_optimizer_shard(staged, optimizer, runtime.rank)
    # gathering sharded parameters is collective (every process); otherwise only the writer needs them
    values = full_values(params) if runtime.shards_state or runtime.is_main else {}
    runtime.barrier()
    if runtime.is_main:
        payload = {"fingerprint": fingerprint, **asdict(state)}
        if runtime.loss_scaler is not None:
            ckpt.write_loss_scaler(staged, runtime.loss_scaler)
        ckpt.write_main_files(staged, values, None if runtime.shards_state else optimizer, scheduler, payload)
        ckpt.publish(root, state.step)
        ckpt.prune(root, cfg.keep_checkpoints, {state.best_step} if state.best_step is not None else set())
    runtime.barrier()


def _resume(root: Path, params, optimizer, scheduler, fingerprint: dict[str, Any], runtime: Runtime) -> TrainState:
    found = ckpt.complete_checkpoints(root)
    if not found:
        raise ConfigError(f"nothing to resume: no complete checkpoint in {root}",
                          hint="start the run again without --resume")
    latest = found[-1]
    saved = latest.state.pop("fingerprint")
    changed = [k for k in saved["settings"] if saved["settings"][k] != fingerprint["settings"].get(k)]
    if changed or saved["data_sha256"] != fingerprint["data_sha256"] or saved["processes"] != fingerprint["processes"]:
        what = changed or (["training data"] if saved["data_sha256"] != fingerprint["data_sha256"] else ["processes"])
        raise ConfigError(f"cannot resume {latest.path}: {', '.join(map(str, what))} changed since it was written",
                          hint="resume with the run's own config, data and number of processes")
    _check_optimizer_layout(latest.path, runtime)
    ckpt.load_trainable(latest.path, params)
    if runtime.uses_deepspeed:
        runtime.load_deepspeed_state(latest.path)
    else:
        ckpt.load_optimizer(latest.path, optimizer, runtime.rank)
    ckpt.load_scheduler(latest.path, scheduler)
    if runtime.loss_scaler is not None:
        ckpt.load_loss_scaler(latest.path, runtime.loss_scaler)
    ckpt.restore_rng_state(latest.path, runtime.rank)
    log.warning("resuming from %s (step %d)", latest.path, latest.step)
    return TrainState(**latest.state)


def _share_of_step(step_batches: list, rank: int, grad_accum: int, fill: bool) -> list[tuple[Any, float]]:
    """This process's micro-batches of the step, each with its weight. With `fill` (several processes, or
    DeepSpeed) every process runs exactly `grad_accum` forwards and backwards, because under FSDP and ZeRO-3
    each one gathers parameters from every process, and DeepSpeed counts micro-steps to its accumulation
    boundary: where the epoch's last step has too few micro-batches, the step's first fills in at weight 0."""
    share = [(batch, 1.0) for batch in step_batches[rank * grad_accum : (rank + 1) * grad_accum]]
    missing = grad_accum - len(share) if fill else 0
    return share + [(step_batches[0], 0.0)] * missing


def _check_optimizer_layout(checkpoint: Path, runtime: Runtime) -> None:
    """A DeepSpeed checkpoint's optimiser is in its engine's files, anyone else's in torch's: neither reads the
    other's."""
    if (checkpoint / DEEPSPEED_TAG).is_dir() != runtime.uses_deepspeed:
        written = "without DeepSpeed" if runtime.uses_deepspeed else "under DeepSpeed ZeRO"
        raise ConfigError(f"cannot resume {checkpoint}: it was written {written}, and its optimiser state is in "
                          "that layout", hint="resume with the --strategy of the interrupted run")


def _start_neftune(model, alpha: float | None):
    if alpha is None:
        return None
    from transformers.integrations.neftune import activate_neftune

    return activate_neftune(model, alpha)


def _whole_state(runtime: Runtime, objective, params, whole_model: bool) -> dict[str, Any] | None:
    """A sharded run's result gathered whole (collective: every process calls this): the trainable values
    for an adapter (peft keeps the adapter's entries), accelerate's full state dict for a whole model (on
    the main process only under ZeRO-3). None otherwise: the model saves its own parameters."""
    if not runtime.shards_state:
        return None
    if not whole_model:
        return full_values(params)
    state = runtime.accelerator.get_state_dict(objective)  # the objective's: keys of its `model` are "model.*"
    if state is None:  # ZeRO-3 gathers the whole state into the main process only, which alone saves it
        return None
    # a tied head gathers as its own copy of the embeddings: leave it out, as save_pretrained does unsharded
    tied = getattr(runtime.unwrap(objective).model, "all_tied_weights_keys", None) or {}
    whole = {name.removeprefix("model."): value for name, value in state.items() if name.startswith("model.")}
    return {name: value for name, value in whole.items() if name not in tied}


def _save_atomically(model, renderer: ChatRenderer, target: Path, whole_model: bool,
                     state_dict: dict[str, Any] | None = None) -> None:
    """Write into a temporary folder, then swap it in: a crash never leaves a half-written result."""
    import shutil

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    if whole_model:
        renderer.tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


class _progress:
    """A rich progress bar (steps, loss, tokens/s, ETA) plus a log line every `log_every` steps."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled, self.total, self.done = enabled, total, done

    def __enter__(self) -> _progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
                                TimeRemainingColumn())
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.done, loss="", speed="")
        return self

    def advance(self, row: dict[str, Any], log_every: int) -> None:
        if row["step"] % log_every == 0 or "val_loss" in row:
            val = f" val {row['val_loss']:.4f}" if "val_loss" in row else ""
            log.info("step %d/%d loss %.4f%s  %.0f tok/s", row["step"], self.total, row["loss"], val,
                     row["tokens_per_s"])
        if self.enabled:
            self.bar.update(self.task, advance=1, loss=f"loss {row['loss']:.3f}",
                            speed=f"{row['tokens_per_s']:.0f} tok/s")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)


def _objective(model: Any, cfg: TrainConfig, teacher_model: Any, device: Any) -> Any:
    """SFT's answer NLL, a preference stage's losses, or logit distillation from `teacher_model`."""
    from r1tune.train.objective import AnswerObjective, DistillObjective, PreferenceObjective

    if cfg.stage != "sft":
        return PreferenceObjective(model, cfg.pref_beta, cfg.pref_sft_weight)
    if teacher_model is None:
        return AnswerObjective(model, cfg.label_smoothing)
    teacher_model.to(device).eval().requires_grad_(False)
    return DistillObjective(model, teacher_model, cfg.distill_alpha, cfg.distill_divergence, cfg.distill_temperature,
                            cfg.label_smoothing)


@dataclass
class StepFeed:
    """What a step makes of the plan's example indices: tensors for a micro-batch; with `units` (preference
    stages) every unit weighs one in the step's normalisation, else every answer token does."""

    collate: Callable[[MicroBatch], dict[str, Any]]
    fingerprinted: list[Rendered]  # every rendered answer the trajectory depends on
    units: list[Any] | None = None


def _step_feed(units: list[Any] | None, plan: BatchPlan, model: Any, pad_id: int, batch_size: int,
               precision: str) -> StepFeed:
    """SFT batches, or preference units, scored first by the starting weights (their reference)."""
    if units is None:
        return StepFeed(lambda batch: collate_micro_batch(batch, plan.examples, pad_id, plan.packing), plan.examples)
    from r1tune.train import preference

    preference.add_reference_logps(model, units, pad_id, batch_size, precision)
    rejected = [u.rejected for u in units if u.rejected is not None]
    return StepFeed(lambda batch: preference.collate_units(batch, units, pad_id), plan.examples + rejected, units)


def _preference_accuracy(feed: StepFeed, model: Any, pad_id: int, batch_size: int, precision: str) -> float | None:
    if feed.units is None:
        return None
    from r1tune.train.preference import preference_accuracy

    return preference_accuracy(feed.units, model, pad_id, batch_size, precision)
