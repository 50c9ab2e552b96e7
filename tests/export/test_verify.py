"""The export check's decision, by hand: shared-prefix agreement, perplexity tolerance per dtype, prompt ids."""

from __future__ import annotations

import pytest

from r1tune.export.verify import _judge, _shared_prefix


def test_shared_prefix_is_a_share_of_the_longer_answer():
    assert _shared_prefix("abcd", "abXY") == 0.5 and _shared_prefix("ab", "abcd") == 0.5
    assert _shared_prefix("", "") == 1.0 and _shared_prefix("same", "same") == 1.0


def _results(run_answers, export_answers, ppl_run=4.0, ppl_export=4.0, same_ids=True):
    return {"run": {"answers": run_answers, "perplexity": ppl_run, "prompt_ids": [[1, 2]]},
            "export": {"answers": export_answers, "perplexity": ppl_export,
                       "prompt_ids": [[1, 2]] if same_ids else [[1, 3]]}}


def test_a_faithful_bf16_export_passes_and_a_drifting_one_fails_with_reasons():
    ok = _judge(_results(["abcd", "same"], ["abcX", "same"], 4.0, 4.01), "bf16", "test.jsonl", 2)
    # agreement (0.75 + 1) / 2 = 0.875 >= 0.8; perplexity +0.25% within ±0.5%; half the answers identical
    assert ok["passed"] and ok["greedy_agreement"] == pytest.approx(0.875) and ok["identical_answers"] == 0.5
    bad = _judge(_results(["abcd", "same"], ["Xbcd", "diff"], 4.0, 4.2, same_ids=False), "bf16", "test.jsonl", 2)
    assert not bad["passed"] and bad["problems"] == [
        "the export renders prompts to different token ids than the run",
        "answer perplexity changed +5.00% (tolerance ±0.5%)",
        "greedy answers agree on 0% (need 80%)"]
    assert not _judge(_results(["a"], ["a"], 4.0, 4.01), "fp32", "test.jsonl", 1)["passed"]  # fp32: ±0.1% only


@pytest.mark.parametrize(("device", "params", "free", "expected"), [
    ("cpu", 70_000_000_000, None, "fp32"),         # a CPU check is fp32, as before
    ("cuda", 1_500_000_000, 80 * 10**9, "fp32"),   # 6 GB of fp32 weights on one 80 GB GPU
    ("cuda", 70_000_000_000, 8 * 80 * 10**9, "fp32"),  # 280 GB spread over eight
    ("cuda", 70_000_000_000, 2 * 80 * 10**9, "bf16"),  # not over two: the compute dtype
])
def test_the_check_runs_in_fp32_where_the_weights_fit(device, params, free, expected):
    from r1tune.export.verify import check_compute

    assert check_compute(device, "bf16", params, free) == expected


def test_the_parameter_count_comes_from_the_config_alone(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    from r1tune.config import ModelConfig
    from r1tune.export.verify import _parameter_count

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert _parameter_count(ModelConfig(name=str(tiny_llama_dir))) == sum(p.numel() for p in model.parameters())
