"""Which artefact each `export --format` writes, and the checks that fail before any heavy work.

| format | writes | verified as |
|---|---|---|
| merged | safetensors folder, bf16 (or fp32) | that dtype |
| gguf   | `model-<quant>.gguf` (f16, q8_0; k-quants through llama.cpp) | the quant |
| ollama | the GGUF plus a `Modelfile` rendering r1tune's chat format | the quant |
| int8   | torchao weight-only INT8 safetensors (CPU) | int8 |
| gptq/awq | 4-bit folder through gptqmodel (CUDA) | 4-bit |
| vllm   | base reference + LoRA adapter (or the trained weights), chat template, `vllm serve` command | adapter bytes |
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from r1tune.errors import R1TuneError
from r1tune.rundir import RunDir

FORMATS = ("merged", "gguf", "ollama", "int8", "gptq", "awq", "vllm")
ExportDtype = Literal["bf16", "fp32"]


@dataclass(frozen=True)
class ExportOptions:
    fmt: str = "merged"
    dtype: ExportDtype = "bf16"  # merged only; other formats decide their own storage
    quant: str = "q8_0"  # gguf/ollama only
    verify: bool = True


@dataclass
class Built:
    """What was written: `stored` keys the verification tolerance and the model card's loading advice."""

    stored: str
    gguf_file: str | None = None
    model_dir: str = "."  # the loadable folder inside the export, for verification
    serve_command: str | None = None


def preflight(run: RunDir, opts: ExportOptions) -> None:
    """Every refusal that does not need the weights, so a bad request costs nothing."""
    from r1tune.export.gguf_writer import QUANTS

    if opts.fmt not in FORMATS:
        raise R1TuneError(f"--format {opts.fmt!r} is not one of {', '.join(FORMATS)}")
    if opts.dtype not in ("bf16", "fp32"):
        raise R1TuneError(f"--dtype must be bf16 or fp32, got {opts.dtype!r}")
    if opts.fmt in ("gguf", "ollama"):
        _check_gguf_source(run, opts.quant)
    elif opts.fmt == "int8":
        from r1tune.export.int8 import check_int8

        check_int8()
    elif opts.fmt in ("gptq", "awq"):
        from r1tune.export.gptq import check_gptq

        check_gptq(opts.fmt)
    elif opts.fmt == "vllm" and not run.trains_whole_model:
        from r1tune.export.vllm import check_vllm_adapter

        check_vllm_adapter(run.adapter)
    if opts.fmt not in ("gguf", "ollama") and opts.quant not in QUANTS:
        raise R1TuneError(f"--quant applies to --format gguf/ollama only, not {opts.fmt}")


def _check_gguf_source(run: RunDir, quant: str) -> None:
    """Architecture and quantisation are checked on the base model's config, before any merging."""
    from r1tune.export.gguf_writer import check_gguf_export
    from r1tune.export.llama_cpp import K_QUANTS, check_llama_cpp
    from r1tune.models.loading import resolve_model_source

    source = run.whole_model if run.trains_whole_model else Path(resolve_model_source(run.load_config().model).location)
    if not (source / "config.json").is_file():
        raise R1TuneError(f"GGUF export needs the model's config.json; {source} has none")
    if quant in K_QUANTS:
        check_llama_cpp(f"--quant {quant}")
    check_gguf_export(source, "f16" if quant in K_QUANTS else quant)


def build(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    """Write the format's files into `tmp` (a fresh folder)."""
    builders = {"merged": _merged, "gguf": _gguf, "ollama": _ollama, "int8": _int8, "gptq": _gptq, "awq": _gptq,
                "vllm": _vllm}
    return builders[opts.fmt](run, tmp, opts)


def _weights(run: RunDir, dest: Path, dtype: ExportDtype) -> None:
    from r1tune.export.merge import copy_whole_model, merge_adapter

    if run.trains_whole_model:
        copy_whole_model(run.whole_model, dest, dtype)
    else:
        merge_adapter(run.load_config().model, run.adapter, dest, dtype)


def _merged(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    _weights(run, tmp, opts.dtype)
    return Built(stored=opts.dtype)


def _gguf(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    """The model's tensors → GGUF, one at a time (k-quants: f16 first, then llama.cpp's quantiser)."""
    from r1tune.export.gguf_writer import write_gguf
    from r1tune.export.llama_cpp import K_QUANTS, quantize

    tmp.mkdir(parents=True, exist_ok=True)
    scratch = tmp / "hf"
    model_dir, tensors = _gguf_source(run, scratch)
    name = f"model-{opts.quant}.gguf"
    if opts.quant in K_QUANTS:
        write_gguf(model_dir, tmp / "model-f16.gguf", "f16", tensors=tensors)
        quantize(tmp / "model-f16.gguf", tmp / name, opts.quant)
        (tmp / "model-f16.gguf").unlink()
    else:
        write_gguf(model_dir, tmp / name, opts.quant, tensors=tensors)
    shutil.rmtree(scratch, ignore_errors=True)
    return Built(stored=opts.quant, gguf_file=name, serve_command=f"llama-server -m {name}")


def _gguf_source(run: RunDir, scratch: Path) -> tuple[Path, Any]:
    """(folder with config and tokenizer, the tensors or None for the folder's own): a trained whole model is
    read in place; an adapter is merged into its base as the GGUF writer takes each tensor, or, where only
    peft can merge it, into an fp32 folder in `scratch` first."""
    from r1tune.export.merge import merge_in_memory, merged_tensor_stream, storage_dtype

    if run.trains_whole_model:
        return run.whole_model, None
    model_cfg = run.load_config().model
    tensors = merged_tensor_stream(model_cfg, run.adapter, scratch)
    if tensors is None:
        merge_in_memory(model_cfg, run.adapter, scratch, storage_dtype("fp32"))
    return scratch, tensors


def _ollama(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    from r1tune.export.ollama import MODELFILE, modelfile

    built = _gguf(run, tmp, opts)
    (tmp / MODELFILE).write_text(modelfile(built.gguf_file or "", run_renderer(run), preset_sampling(run)),
                                 encoding="utf-8")
    built.serve_command = f"ollama create {run.load_config().project.name} -f Modelfile"
    return built


def _int8(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    from r1tune.export.int8 import write_int8

    _via_weights(run, tmp, "fp32", write_int8)
    return Built(stored="int8")


def _gptq(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    from r1tune.export.gptq import write_gptq

    _via_weights(run, tmp, "bf16", lambda weights, out: write_gptq(weights, out, opts.fmt, calibration_texts(run)))
    return Built(stored="4bit", serve_command="vllm serve .")


def _via_weights(run: RunDir, tmp: Path, dtype: ExportDtype, convert: Any) -> None:
    """Merged weights in `dtype` in a scratch folder beside `tmp`, converted into `tmp`, then removed."""
    weights = tmp.with_name(f"{tmp.name}.{dtype}")
    shutil.rmtree(weights, ignore_errors=True)
    _weights(run, weights, dtype)
    try:
        convert(weights, tmp)
    finally:
        shutil.rmtree(weights, ignore_errors=True)


def _vllm(run: RunDir, tmp: Path, opts: ExportOptions) -> Built:
    from r1tune.export.vllm import write_adapter_folder, write_model_folder

    tmp.mkdir(parents=True)
    renderer = run_renderer(run)
    if run.trains_whole_model:
        _weights(run, tmp / "model", "bf16")
        return Built(stored="bf16", model_dir="model", serve_command=write_model_folder(tmp, renderer))
    cfg = run.load_config()
    base = str(run.read_info().get("model") or cfg.model.name)
    command = write_adapter_folder(run.adapter, tmp, _hub_id(base), cfg.project.name, renderer)
    return Built(stored="adapter", model_dir="adapter", serve_command=command)


def _hub_id(model: str) -> str:
    """vLLM loads the base by hub id or folder: a preset name becomes its hub id."""
    from r1tune.models.presets import presets

    preset = presets().get(model)
    return preset.hub_id if preset else model


def run_renderer(run: RunDir) -> Any:
    """The run's renderer (its tokenizer, chat format and reasoning mode), without loading weights."""
    from r1tune import models

    cfg = run.load_config()
    return models.load(cfg.model, cfg.train.reasoning, cfg.train.train_on_prompt, with_weights=False).renderer


def preset_sampling(run: RunDir) -> dict[str, Any]:
    """The sampling the run's base preset recommends ({} for a model that is not a preset)."""
    from r1tune.models.presets import presets

    preset = presets().get(run.load_config().model.name)
    return {"temperature": preset.sampling.temperature, "top_p": preset.sampling.top_p} if preset else {}


def calibration_texts(run: RunDir) -> list[str]:
    """The run's training examples as the model saw them (prompt and answer), for 4-bit calibration."""
    from itertools import islice

    from r1tune.data.records import read_jsonl
    from r1tune.export.gptq import CALIBRATION_EXAMPLES

    renderer = run_renderer(run)
    train = run.data / "train.jsonl"
    if not train.is_file():
        return []
    return [renderer.tokenizer.decode(renderer.render_training(r).input_ids)
            for r in islice(read_jsonl(train), CALIBRATION_EXAMPLES)]
