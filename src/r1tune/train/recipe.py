"""The training recipe, top to bottom: render → wrap with LoRA → loop → validate → save the adapter.

Loss is taken on answer tokens only (the renderer's mask), weights stay fp32 and matmuls run under bf16
autocast where the hardware supports it. Batches group records of similar length so little compute goes
to padding. The adapter is saved in PEFT format, loadable with `PeftModel.from_pretrained`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1tune.config import TrainConfig
from r1tune.data.records import Record
from r1tune.errors import ConfigError
from r1tune.models.chat_format import ChatRenderer, Rendered
from r1tune.models.precision import autocast, resolve_precision
from r1tune.models.scoring import answer_loss, collate

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int
    epochs: float
    precision: str
    seconds: float
    trained_tokens: int
    truncated: int
    dropped_empty: int
    val_loss: float | None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["adapter_dir"] = str(self.adapter_dir)
        out.pop("history")
        return out


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
) -> tuple[PreTrainedModel, TrainResult]:
    """Fine-tune `model` with LoRA on `train_records`; returns the PEFT-wrapped model and a summary."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    precision = resolve_precision(cfg.precision)

    # 1. Render every record to ids + trained mask; count what truncation cut, drop what it emptied.
    examples, truncated, dropped = _render_all(renderer, train_records, cfg.max_seq_len)
    val_examples, _, _ = _render_all(renderer, val_records, cfg.max_seq_len)
    if not examples:
        raise ConfigError("no training example keeps any answer token after truncation", hint="raise train.max_seq_len")

    # 2. Wrap the base model with LoRA adapters on every linear layer of the blocks.
    model = _add_lora(model, cfg, default_target_modules)

    # 3. Optimiser and schedule: AdamW, linear warm-up then cosine decay to zero.
    batches_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // cfg.grad_accum)
    total_steps = cfg.max_steps or max(1, round(steps_per_epoch * cfg.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _cosine_with_warmup(optimizer, round(total_steps * cfg.warmup_ratio), total_steps)

    # 4. The loop. Each optimiser step averages `grad_accum` micro-batches.
    pad_id = renderer.tokenizer.pad_token_id
    metrics_path = out_dir / "train_metrics.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    step, trained_tokens, t_start = 0, 0, time.perf_counter()
    window_loss, window_batches, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    model.train()
    with _progress(show_progress, total_steps) as (bar, task), metrics_path.open("w") as metrics_file:
        micro_batches = _epoch_batches(examples, cfg.batch_size, rng)
        while step < total_steps:
            for _ in range(cfg.grad_accum):
                batch = next(micro_batches, None)
                if batch is None:  # epoch finished: reshuffle
                    micro_batches = _epoch_batches(examples, cfg.batch_size, rng)
                    batch = next(micro_batches)
                tensors = collate(batch, pad_id)
                with autocast(precision):
                    loss = model(**tensors).loss / cfg.grad_accum
                loss.backward()
                window_loss += float(loss.detach()) * cfg.grad_accum
                window_batches += 1
                n_tokens = int((tensors["labels"][:, 1:] != -100).sum())
                trained_tokens += n_tokens
                window_tokens += n_tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_end = step % steps_per_epoch == 0 or step == total_steps
            if step % cfg.log_every == 0 or epoch_end:
                elapsed = time.perf_counter() - window_start
                row = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 3),
                    "loss": window_loss / window_batches,
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "trained_tokens_per_s": window_tokens / max(elapsed, 1e-9),
                }
                if val_examples and epoch_end:
                    row["val_loss"] = answer_loss(model, val_examples, pad_id, cfg.batch_size, precision).mean_nll
                history.append(row)
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                log.info("step %d/%d loss %.4f", step, total_steps, row["loss"])
                window_loss, window_batches, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
                bar.update(task, loss=f"loss {row['loss']:.3f}", speed=f"{row['trained_tokens_per_s']:.0f} tok/s")
            bar.update(task, advance=1)

    # 5. Final validation and an atomic save of the adapter (a crash never leaves a half-written folder).
    val_loss = answer_loss(model, val_examples, pad_id, cfg.batch_size, precision).mean_nll if val_examples else None
    adapter_dir = out_dir / "adapter"
    _save_atomically(model, adapter_dir)
    result = TrainResult(
        adapter_dir=adapter_dir,
        steps=step,
        epochs=round(step / steps_per_epoch, 3),
        precision=precision,
        seconds=round(time.perf_counter() - t_start, 2),
        trained_tokens=trained_tokens,
        truncated=truncated,
        dropped_empty=dropped,
        val_loss=val_loss,
        history=history,
    )
    (out_dir / "train_summary.json").write_text(json.dumps(result.to_dict(), indent=2))
    return model, result


def _render_all(renderer: ChatRenderer, records: Sequence[Record], max_len: int) -> tuple[list[Rendered], int, int]:
    examples, truncated, dropped = [], 0, 0
    for record in records:
        rendered = renderer.render_training(record, max_len)
        truncated += rendered.truncated
        if rendered.num_trained == 0:
            dropped += 1
            log.warning("%s: no answer token left after truncation to %d tokens; skipped", record.source, max_len)
            continue
        examples.append(rendered)
    if truncated:
        log.warning("%d of %d records were longer than train.max_seq_len=%d and were cut",
                    truncated, len(records), max_len)
    return examples, truncated, dropped


def _add_lora(model: PreTrainedModel, cfg: TrainConfig, default_targets: Sequence[str]) -> PreTrainedModel:
    from peft import LoraConfig, get_peft_model

    targets = list(cfg.target_modules or default_targets)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(f"train.target_modules {missing} do not exist in this model; linear layers include "
                         f"{sorted(n for n in present if n.endswith('proj'))}")
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _epoch_batches(examples: list[Rendered], batch_size: int, rng: random.Random):
    """Shuffle, then sort within windows of 16 batches by length, so batches pad little but stay random."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i].input_ids))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return iter([[examples[i] for i in b] for b in batches])


def _cosine_with_warmup(optimizer, warmup: int, total: int):
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _save_atomically(model: PreTrainedModel, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


class _NoBar:
    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


class _progress:
    """A rich progress bar (steps, loss, tokens/s, ETA), or a no-op when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return _NoBar(), None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
        )
        self.bar.__enter__()
        return self.bar, self.bar.add_task("train", total=self.total, loss="", speed="")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)
