"""Where training metrics go: `train_metrics.jsonl` (one row per optimiser step, always), TensorBoard,
MLflow, and a summary table at the end. Only the main process of a distributed run writes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_FILE = "train_metrics.jsonl"


class MetricsLog:
    """Appends step rows to the JSONL file and forwards them to the configured trackers."""

    def __init__(self, out_dir: Path, trackers: Sequence[str], params: dict[str, Any], resume_step: int = 0,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = out_dir / METRICS_FILE
        self._tensorboard = self._mlflow = None
        if not enabled:
            return
        _keep_rows_up_to(self.path, resume_step)  # a killed run may have logged past its last checkpoint
        self._file = self.path.open("a", encoding="utf-8")
        if "tensorboard" in trackers:
            self._tensorboard = _open_tensorboard(out_dir / "tensorboard", resume_step)
        if "mlflow" in trackers:
            self._mlflow = _open_mlflow(out_dir, params)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        numbers = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        if self._tensorboard is not None:
            for key, value in numbers.items():
                self._tensorboard.add_scalar(f"train/{key}", value, row["step"])
        if self._mlflow is not None:
            self._mlflow.log_metrics(numbers, step=row["step"])

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._mlflow is not None:
            self._mlflow.end_run()


def _keep_rows_up_to(path: Path, step: int) -> None:
    if not path.is_file():
        return
    if step == 0:
        path.unlink()
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _open_tensorboard(folder: Path, resume_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("train.trackers has tensorboard but the tensorboard package is not installed; skipped "
                    "(pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=resume_step + 1 if resume_step else None)


def _open_mlflow(out_dir: Path, params: dict[str, Any]):
    try:
        import mlflow
    except ImportError:
        log.info("mlflow is not installed; metrics go to train_metrics.jsonl and TensorBoard only")
        return None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        log.info("mlflow is installed but MLFLOW_TRACKING_URI is not set; not logging to mlflow")
        return None
    mlflow.start_run(run_name=out_dir.parent.name)
    mlflow.log_params({k: str(v) for k, v in params.items()})
    return mlflow


def print_summary(result: Any, console: Any = None) -> None:
    """A final table: steps, time, throughput, tokens, truncation, losses."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="training summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("method", result.method),
        ("steps / epochs", f"{result.steps} / {result.epochs}"),
        ("stopped early", "yes" if result.stopped_early else "no"),
        ("precision", result.precision),
        ("packing", f"on ({100 * result.fill_rate:.0f}% of positions real)" if result.packing
         else f"off ({100 * result.fill_rate:.0f}% of positions real)"),
        ("wall time", f"{result.seconds:.1f} s"),
        ("tokens/s (real, incl. prompts)", f"{result.tokens_per_s:.0f}"),
        ("answer tokens trained", str(result.trained_tokens)),
        ("records cut by max_seq_len", str(result.truncated)),
        ("records dropped (no answer left)", str(result.dropped_empty)),
        ("best validation loss", "—" if result.best_val_loss is None
         else f"{result.best_val_loss:.4f} (step {result.best_step})"),
        ("final validation loss", "—" if result.val_loss is None else f"{result.val_loss:.4f}"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    (console or Console(stderr=True)).print(table)


def log_eval_scalars(train_dir: Path, trackers: Sequence[str], scalars: dict[str, float], step: int) -> bool:
    """Write base-vs-tuned eval metrics (`eval/base/rougeL`, `eval/tuned/rougeL`, ...) at the run's last
    training step into the run's TensorBoard log, so they show beside the loss curves. False when the run
    has no TensorBoard tracker (or the package is missing)."""
    if "tensorboard" not in trackers:
        return False
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("train.trackers has tensorboard but the tensorboard package is not installed; eval metrics "
                    "stay in metrics.json")
        return False
    writer = SummaryWriter(log_dir=str(train_dir / "tensorboard"))
    try:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()
    return True
