"""Model resolution and loading: presets, local folders, safety refusals, embedded cache."""

from __future__ import annotations

import json

import pytest

from r1tune.artifacts import ExportProvenance, write_artifact
from r1tune.config import ModelConfig
from r1tune.errors import ModelLoadError
from r1tune.models import load, presets, resolve_model_source
from r1tune.models import loading as loading_mod
from r1tune.models.device import DevicePlan
from r1tune.models.loading import _plan_placement


def test_presets_cover_the_r1_family_with_r1_sampling():
    table = presets()
    expected = {"smollm2-135m-instruct", "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b",
                "deepseek-r1-distill-qwen-14b", "deepseek-r1-distill-qwen-32b", "deepseek-r1-distill-llama-8b",
                "deepseek-r1-distill-llama-70b"}
    assert expected <= set(table)
    for name in expected - {"smollm2-135m-instruct"}:
        p = table[name]
        assert p.chat_format == "deepseek-r1" and p.system_prompt == "avoid"
        assert (p.sampling.temperature, p.sampling.top_p) == (0.6, 0.95)
        assert set(p.lora_target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"}
        assert p.hub_id.startswith("deepseek-ai/DeepSeek-R1-Distill-")
    assert table["deepseek-r1-distill-qwen-7b"].architecture == "Qwen2ForCausalLM"
    assert table["deepseek-r1-distill-llama-8b"].architecture == "LlamaForCausalLM"


def test_unknown_model_error_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        resolve_model_source(ModelConfig(name="no-such-model"))
    text = str(info.value)
    assert "not a preset" in text and str(tmp_path / "no-such-model") in text and "fix:" in text


def test_uncached_hub_id_fails_offline_with_a_fix(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the hub library reads the variable once, at import: without this it goes online and retries (~45 s)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="(?s)could not load .*fix: without internet"):
        load(ModelConfig(name="someone/not-cached-model"))


def test_pickle_checkpoints_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelLoadError, match="refusing pickle checkpoint.*pytorch_model.bin"):
        resolve_model_source(ModelConfig(name=str(tmp_path)))


def test_remote_code_needs_explicit_trust(tiny_llama_dir, tmp_path):
    import shutil

    folder = tmp_path / "remote"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil_custom_arch"  # unknown to transformers: only the repo's own code can build it
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        load(ModelConfig(name=str(folder)))


def test_local_folder_loads_with_its_format(tiny_qwen_r1_dir):
    loaded = load(ModelConfig(name=str(tiny_qwen_r1_dir)))
    assert loaded.source.kind == "local" and loaded.renderer.fmt.name == "deepseek-r1"
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM"


def test_embedded_cache_is_reused_without_converting(smol_tokenizer_dir, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(loading_mod, "_convert_gguf", no_conversion)
    source = resolve_model_source(ModelConfig())
    assert source.kind == "embedded" and source.location == str(smol_tokenizer_dir)
    assert not list(smol_tokenizer_dir.parent.glob(".smollm2-*")), "temporary conversion folders left behind"


def test_embedded_cache_is_written_atomically(monkeypatch, tmp_path):
    monkeypatch.setenv("R1TUNE_HOME", str(tmp_path))

    def failing_conversion(folder, gguf_file, out):
        (out / "config.json").write_text("{}")  # a half-written cache...
        raise RuntimeError("disk full")

    monkeypatch.setattr(loading_mod, "_convert_gguf", failing_conversion)
    with pytest.raises(RuntimeError, match="disk full"):
        resolve_model_source(ModelConfig())
    models_dir = tmp_path / "models"
    assert list(models_dir.iterdir()) == []  # ...never becomes visible as the cache


def test_an_export_is_prompted_like_the_preset_it_was_tuned_from(tiny_llama_dir, smol_tokenizer_dir, tmp_path):
    import shutil

    from r1tune.data.records import Message

    export = tmp_path / "shop-v1"
    shutil.copytree(tiny_llama_dir, export)
    chat = [Message("user", "Describe the blue mug.")]
    plain = load(ModelConfig(name=str(export)), with_weights=False).renderer.render_prompt(chat)
    write_artifact(export / "r1tune_export.json", ExportProvenance(
        base_model="smollm2-135m-instruct", source="runs/x", kind="adapter", chat_format="chatml",
        reasoning="empty_think"))
    exported = load(ModelConfig(name=str(export)), with_weights=False)
    preset = load(ModelConfig(name="smollm2-135m-instruct"), with_weights=False)
    assert exported.renderer.render_prompt(chat) == preset.renderer.render_prompt(chat) != plain
    assert exported.source.preset.name == "smollm2-135m-instruct" and exported.sampling == preset.sampling
    assert exported.source.display_name == str(export)  # served under its own name, not the base's

    (export / "r1tune_export.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="r1tune_export.json: not valid JSON"):
        resolve_model_source(ModelConfig(name=str(export)))
    (export / "r1tune_export.json").write_text(json.dumps({"base_model": "smollm2-135m-instruct"}))  # an old marker
    with pytest.raises(ModelLoadError, match="r1tune_export.json: field source: Field required"):
        resolve_model_source(ModelConfig(name=str(export)))


@pytest.mark.parametrize(("plan", "expected"), [
    (DevicePlan("cpu", "bf16", "sdpa"), {"attn_implementation": "sdpa"}),
    (DevicePlan("cuda", "bf16", "flash_attention_2", gpus=1),
     {"attn_implementation": "flash_attention_2", "device_map": {"": 0}}),
    (DevicePlan("cuda", "fp16", "sdpa", gpus=4), {"attn_implementation": "sdpa", "device_map": "auto"}),
])
def test_inference_placement_follows_the_plan(plan, expected):
    # one placement for safetensors and GGUF loads: several GPUs spread a model too large for one
    assert _plan_placement(plan) == expected
