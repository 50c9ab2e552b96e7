"""Merging shard by shard gives the very tensors peft's in-memory merge gives, and leaves the adapters it
cannot describe to peft."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from r1tune.export.gguf_writer import write_gguf
from r1tune.export.shard_merge import merge_by_shard, merged_stream, plan_merge, why_not_streamed

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def sharded_base(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama saved in bf16 over several shards with an index, as large checkpoints are."""
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("sharded_base")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    model.save_pretrained(folder, max_shard_size="2MB")
    assert len(list(folder.glob("*.safetensors"))) >= 2 and (folder / "model.safetensors.index.json").is_file()
    return folder


def _adapter(base, folder, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(target_modules=TARGETS, **lora))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # B starts at zero; a trained adapter's is not
                param.normal_(std=0.05)
    model.save_pretrained(folder)
    return folder


def _peft_merged(base, adapter, dtype):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    return {k: v for k, v in model.merge_and_unload().to(dtype).state_dict().items() if k != "lm_head.weight"}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("lora", [{"r": 4, "lora_alpha": 8}, {"r": 8, "lora_alpha": 16, "use_rslora": True}])
def test_shards_hold_exactly_what_peft_merges(sharded_base, tmp_path, dtype, lora):
    adapter = _adapter(sharded_base, tmp_path / "adapter", **lora)
    assert merge_by_shard(sharded_base, adapter, tmp_path / "out", dtype) is None
    merged = {}
    for shard in (tmp_path / "out").glob("*.safetensors"):
        merged.update(load_file(shard))
    expected = _peft_merged(sharded_base, adapter, dtype)
    assert merged.keys() == expected.keys()
    changed = [k for k in merged if any(t in k for t in TARGETS)]
    assert len(changed) == 7 * 2
    assert all(torch.equal(merged[k], expected[k]) for k in merged), [k for k in merged if not torch.equal(merged[k], expected[k])]
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in merged.values())
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert loaded.dtype == dtype and torch.equal(loaded.model.layers[1].mlp.down_proj.weight,
                                                 expected["model.layers.1.mlp.down_proj.weight"])


@pytest.mark.parametrize(("lora", "reason"), [({"use_dora": True}, "DoRA"),
                                              ({"modules_to_save": ["lm_head"]}, "saved whole modules"),
                                              ({"bias": "lora_only"}, "trained biases")])
def test_adapters_that_are_not_a_plain_sum_are_left_to_peft(sharded_base, tmp_path, lora, reason):
    adapter = _adapter(sharded_base, tmp_path / "adapter", r=4, lora_alpha=8, **lora)
    assert why_not_streamed(json.loads((adapter / "adapter_config.json").read_text())) == reason
    assert merge_by_shard(sharded_base, adapter, tmp_path / "out", torch.bfloat16) == reason
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_without_the_adapted_tensor_names_is_left_to_peft(sharded_base, tmp_path):
    adapter = _adapter(sharded_base, tmp_path / "adapter", r=4, lora_alpha=8)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for shard in sharded_base.glob("*.safetensors"):
        from safetensors.torch import save_file

        save_file({k.replace("self_attn", "attention"): v for k, v in load_file(shard).items()}, renamed / shard.name)
    reason = merge_by_shard(renamed, adapter, tmp_path / "out", torch.bfloat16)
    assert reason is not None and reason.startswith("the base checkpoint has no tensor model.layers.0.self_attn.")
    assert not (tmp_path / "out").exists()


def test_a_whole_model_is_stored_in_bf16_shard_by_shard_as_a_cast_of_every_tensor(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from r1tune.export.shard_merge import cast_by_shard

    cast_by_shard(tiny_llama_dir, tmp_path / "out", torch.bfloat16)
    stored = load_file(tmp_path / "out" / "model.safetensors")
    expected = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).to(torch.bfloat16).state_dict()
    assert stored.keys() == expected.keys() - {"lm_head.weight"}
    assert all(stored[k].dtype == torch.bfloat16 and torch.equal(stored[k], expected[k]) for k in stored)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_gguf_from_the_merge_stream_equals_gguf_from_the_merged_fp32_folder(sharded_base, tiny_llama_dir, tmp_path,
                                                                            quant):
    """GGUF export merges as it writes, with no merged folder: the file holds the very tensors that the
    merged fp32 folder (the way before, and still where only peft can merge) gives."""
    import gguf
    from transformers import AutoTokenizer

    adapter = _adapter(sharded_base, tmp_path / "adapter", r=4, lora_alpha=8)
    folder, skeleton = tmp_path / "merged", tmp_path / "skeleton"
    assert merge_by_shard(sharded_base, adapter, folder, torch.float32) is None
    skeleton.mkdir()
    shutil.copyfile(sharded_base / "config.json", skeleton / "config.json")
    for target in (folder, skeleton):
        AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(target)
    plan = plan_merge(sharded_base, adapter)
    files = (write_gguf(folder, tmp_path / "from-folder.gguf", quant),
             write_gguf(skeleton, tmp_path / "streamed.gguf", quant, tensors=merged_stream(plan)))
    from_folder, streamed = ({t.name: t for t in gguf.GGUFReader(f).tensors} for f in files)
    assert from_folder.keys() == streamed.keys() and len(streamed) > 10
    for name, tensor in from_folder.items():
        assert tensor.tensor_type == streamed[name].tensor_type and np.array_equal(tensor.data, streamed[name].data)
