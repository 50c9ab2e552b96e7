"""Scale-out: two CPU processes (gloo DDP, launched like `accelerate launch` launches GPU workers) follow
the same trajectory as one process with the same global batch; `--gpus` writes valid accelerate and
DeepSpeed configs and refuses to launch without GPUs."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from helpers import product_records, write_messages_jsonl
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.config import TrainConfig
from r1tune.train.distributed import (
    Launch,
    give_storage_to_meta_trainables,
    torchrun_command,
    write_launch_config,
)

runner = CliRunner()


def _prepared_run(folder, model_dir, grad_accum: int):
    folder.mkdir()
    write_messages_jsonl(folder / "data.jsonl", product_records(24))
    (folder / "r1tune.yaml").write_text(f"""\
project: {{name: ddp, seed: 3}}
data: {{sources: [{{path: data.jsonl}}], val_ratio: 0.15, test_ratio: 0.1}}
model: {{name: "{model_dir}"}}
train: {{max_steps: 4, batch_size: 2, grad_accum: {grad_accum}, max_seq_len: 96, lr: 0.005, lora_dropout: 0.0,
         precision: fp32, warmup_ratio: 0.0, trackers: [], packing: true}}
""")
    result = runner.invoke(app, ["prepare", str(folder / "r1tune.yaml")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return next((folder / "runs").iterdir())


def _rows(run):
    return [json.loads(line) for line in (run / "train" / "train_metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_llama_dir, tmp_path):
    single = _prepared_run(tmp_path / "single", tiny_llama_dir, grad_accum=2)
    double = _prepared_run(tmp_path / "double", tiny_llama_dir, grad_accum=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(torchrun_command(double, processes=2), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert runner.invoke(app, ["train", str(single), "--no-progress"], catch_exceptions=False).exit_code == 0

    one, two = _rows(single), _rows(double)
    assert [r["step"] for r in two] == [1, 2, 3, 4]  # written once, by the main process only
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], abs=1e-4)
    assert [r["trained_tokens"] for r in two] == [r["trained_tokens"] for r in one]
    assert [r["grad_norm"] for r in two] == pytest.approx([r["grad_norm"] for r in one], rel=1e-3)
    from safetensors.torch import load_file

    a = load_file(single / "train" / "adapter" / "adapter_model.safetensors")
    b = load_file(double / "train" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert json.loads((double / "train" / "train_summary.json").read_text())["processes"] == 2


@pytest.mark.parametrize("strategy, distributed_type", [
    ("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"),
])
def test_launch_configs_load_in_accelerate(strategy, distributed_type, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = TrainConfig(batch_size=4, grad_accum=2, max_grad_norm=0.5)
    path = write_launch_config(tmp_path, cfg, Launch(gpus=4, strategy=strategy), precision="bf16")
    loaded = load_config_from_file(str(path))
    assert loaded.distributed_type.value == distributed_type and loaded.num_processes == 4
    if strategy.startswith("zero"):
        ds = json.loads((tmp_path / "deepspeed.json").read_text())
        assert ds["zero_optimization"]["stage"] == int(strategy[-1])
        assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["gradient_clipping"]) == (
            4, 2, 0.5)
        assert ds["bf16"]["enabled"] is True
        # ZeRO-3 partitions the base as it loads (deepspeed.zero.Init): accelerate's launcher gets the flag
        assert loaded.deepspeed_config["zero3_init_flag"] is (strategy == "zero3")


def test_gpus_without_gpus_is_a_clear_error(tiny_llama_dir, tmp_path):
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has GPUs")
    run = _prepared_run(tmp_path / "p", tiny_llama_dir, grad_accum=1)
    result = runner.invoke(app, ["train", str(run), "--gpus", "2"])
    assert result.exit_code != 0
    assert "--gpus 2 asks for more CUDA GPUs than this machine has" in str(result.exception)


def test_a_two_node_launch_config_names_the_main_machine(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    launch = Launch(gpus=8, strategy="fsdp", nodes=2, node_rank=1, main_address="10.0.0.5", main_port=29600)
    loaded = load_config_from_file(str(write_launch_config(tmp_path, TrainConfig(), launch, precision="fp16")))
    assert (loaded.num_machines, loaded.machine_rank, loaded.num_processes) == (2, 1, 16)
    assert (loaded.main_process_ip, loaded.main_process_port, str(loaded.mixed_precision)) == ("10.0.0.5", 29600, "fp16")


@pytest.mark.parametrize(("launch", "message"), [
    (Launch(gpus=2, nodes=2), "--nodes > 1 needs --main-address"),
    (Launch(gpus=2, nodes=2, node_rank=2, main_address="h"), "--node-rank 2 is outside 0..1"),
    (Launch(gpus=3), "--gpus 3 asks for more CUDA GPUs than this machine has"),
])
def test_launch_requests_that_cannot_work_are_refused(launch, message):
    from r1tune.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        launch.check(available=2)


def test_only_trainable_meta_parameters_get_storage_and_a_tied_pair_keeps_one():
    """An FSDP process that did not read the weights: its optimiser needs real trainable parameters (the
    frozen base stays without storage, a tied head and embedding stay one parameter)."""
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Embedding(8, 4), torch.nn.Linear(4, 8, bias=False), torch.nn.Linear(8, 8))
    model[1].weight = model[0].weight
    model[2].requires_grad_(False)
    assert give_storage_to_meta_trainables(model, torch.device("cpu")) == 1
    assert not model[0].weight.is_meta and model[1].weight is model[0].weight and model[0].weight.requires_grad
    assert model[2].weight.is_meta and model[2].bias.is_meta
