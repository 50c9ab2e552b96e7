"""Every stage in the dtypes a GPU gives it, run on the CPU: `r1tune run` (prepare, train with validation,
evaluate), `eval`, `export` and `generate` under the device plan of a bf16 GPU (A100: bf16 compute, bf16
weights for inference) and of a GPU without bf16 (T4: fp16 compute with loss scaling, fp16 weights for
inference). A CPU build of torch cannot fake a CUDA device, but it runs bf16 and fp16 kernels, so dtype
mistakes that would only show on a GPU (a fp32 tensor meeting fp16 weights, a merge in the wrong dtype, a
scaler that is never stepped) show here. The plan keeps `device="cpu"`; only its dtypes are the GPU's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from helpers import with_fp16_loss_scaling, write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.models import device
from r1tune.train import distributed
from r1tune.train.distributed import Runtime

runner = CliRunner()


@dataclass(frozen=True)
class GpuDtypesOnCpu(device.DevicePlan):
    """A GPU's plan with the device left on the CPU: inference weights in the compute dtype, as on CUDA."""

    @property
    def weights_dtype(self) -> Any:
        return self.training_weights_dtype


@pytest.fixture(params=["bf16", "fp16"], ids=["A100-bf16", "T4-fp16"])
def gpu_dtypes(request, monkeypatch) -> str:
    from accelerate import Accelerator

    compute = request.param
    monkeypatch.setattr(device, "current_plan", lambda precision="auto", attention="auto":
                        GpuDtypesOnCpu("cpu", "fp32" if precision == "fp32" else compute, "sdpa"))
    if compute == "fp16":
        def fp16_runtime(precision: str) -> Runtime:  # accelerate's GPU set-up: fp16 with its GradScaler
            return Runtime(with_fp16_loss_scaling(Accelerator(cpu=True), monkeypatch.setattr))

        monkeypatch.setattr(distributed, "start_runtime", fp16_runtime)
    return compute


def _invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_every_stage_runs_in_a_gpus_dtypes(gpu_dtypes, tiny_llama_dir, tmp_path):
    from r1tune.rundir import RunDir

    config = write_project(tmp_path, tiny_llama_dir)
    _invoke("run", str(config), "train.precision=auto", "train.max_steps=4", "eval.redteam=[]", "--no-progress")
    run = RunDir(next((tmp_path / "runs").iterdir()))
    summary = json.loads((run.train / "train_summary.json").read_text())
    assert summary["precision"] == gpu_dtypes and summary["val_loss"] == summary["val_loss"]  # not NaN
    rows = [json.loads(line) for line in (run.train / "train_metrics.jsonl").read_text().splitlines()]
    assert ("loss_scale" in rows[-1]) == (gpu_dtypes == "fp16")
    metrics = run.read_metrics()
    assert 1 < metrics.tuned.perplexity < 1e6 and 1 < metrics.base.perplexity < 1e6

    _invoke("eval", str(run.path), "--no-progress")
    assert run.read_metrics().tuned.perplexity == pytest.approx(metrics.tuned.perplexity, rel=1e-2)
    exported = tmp_path / "exported"
    _invoke("export", str(run.path), "--out", str(exported))
    verify = json.loads((exported / "verify.json").read_text())
    assert verify["dtype"] == "bf16" and verify["same_prompt_ids"]  # a random model's near-ties flip: no agreement
    _invoke("generate", str(run.path), "Describe a mug", "--max-new-tokens", "4")
    _served_stream(run.path, gpu_dtypes)


def _served_stream(run_path, compute: str) -> None:
    """`r1tune serve RUN` with the builtin engine: the weights in the compute dtype, one streamed answer."""
    import httpx
    from serve_helpers import running_server

    from r1tune.serve import build_runtime
    from r1tune.serve.runtime import resolve_target

    target = resolve_target(run_path)
    runtime = build_runtime(target)
    assert runtime.loaded.model.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[compute]
    with running_server(runtime) as url:
        body = {"model": target.run_adapter_name, "messages": [{"role": "user", "content": "Describe a mug"}],
                "max_tokens": 4, "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200 and lines[-1] == "data: [DONE]" and len(lines) > 2
