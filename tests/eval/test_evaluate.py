"""Evaluation on a tiny model: perplexity is exp(mean answer-token loss); base vs tuned side by side; every
metric, decoding setting, red-team probe and latency figure lands in metrics.json; bad inputs give zeros
with reasons, never a crash."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import product_records

from r1tune import models
from r1tune.config import EvalConfig, ModelConfig
from r1tune.errors import R1TuneError
from r1tune.eval import evaluate
from r1tune.models.scoring import answer_loss, collate


def test_perplexity_is_exp_of_mean_answer_token_loss(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    examples = [loaded.renderer.render_training(r) for r in product_records(5)]
    summary = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=2)
    # Independent reference: transformers' own loss, one example at a time, weighted by answer tokens.
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            batch = collate([example], loaded.tokenizer.pad_token_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(loaded.model(**batch).loss) * n
            count += n
    assert summary.tokens == count == sum(e.num_trained for e in examples)
    assert summary.mean_nll == pytest.approx(total / count, rel=1e-5)
    assert summary.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)


def test_padding_does_not_change_the_loss(tiny_llama_dir):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    records = product_records(4)
    records[0].messages[0] = type(records[0].messages[0])("user", "a much longer question " * 6)
    examples = [loaded.renderer.render_training(r) for r in records]
    together = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=4)
    alone = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=1)
    assert together.mean_nll == pytest.approx(alone.mean_nll, rel=1e-4)


def test_evaluate_compares_base_and_tuned(tiny_llama_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    peft_model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    loaded.model = peft_model
    metrics = evaluate(EvalConfig(max_new_tokens=4, batch_size=3, redteam=[], latency_prompts=0), loaded,
                       product_records(5), tmp_path,
                       precision="fp32", max_seq_len=128, show_progress=False)
    assert metrics.n_examples == 5
    for name in ("base", "tuned"):
        assert getattr(metrics, name).perplexity > 1 and 0 <= getattr(metrics, name).rougeL <= 100
        assert getattr(metrics, name).answer_tokens > 0
    # A random non-zero adapter changes the model, so the two perplexities differ.
    assert metrics.base.perplexity != metrics.tuned.perplexity
    assert metrics.delta["perplexity_change_pct"] == pytest.approx(
        100 * (metrics.tuned.perplexity / metrics.base.perplexity - 1))
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5 and {"prompt", "reference", "base", "tuned"} <= set(samples[0])


def test_the_base_is_scored_on_untouched_weights_whatever_the_adapter(tiny_llama_dir, tmp_path):
    """The tuned pass merges the adapter into the weights and unmerges it, which leaves fp32 round-off;
    the base must be scored before that, so its figures do not depend on which adapter was trained."""
    from peft import LoraConfig, get_peft_model

    records = product_records(5)
    cfg = EvalConfig(max_new_tokens=6, batch_size=3, redteam=[], latency_prompts=0)
    plain = models.load(ModelConfig(name=str(tiny_llama_dir)))
    examples = [plain.renderer.render_training(r, 128) for r in records]
    untouched = answer_loss(plain.model, examples, plain.tokenizer.pad_token_id, cfg.batch_size)
    base_runs = []
    for seed in (1, 2):
        loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
        torch.manual_seed(seed)
        lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
        loaded.model = get_peft_model(loaded.model, lora)
        out = tmp_path / f"adapter{seed}"
        metrics = evaluate(cfg, loaded, records, out, precision="fp32", max_seq_len=128, show_progress=False)
        samples = [json.loads(line)["base"] for line in (out / "samples.jsonl").read_text().splitlines()]
        base_runs.append((metrics.base.answer_nll, samples, metrics.tuned.answer_nll))
    (nll_1, samples_1, tuned_1), (nll_2, samples_2, tuned_2) = base_runs
    assert tuned_1 != tuned_2  # the two adapters differ...
    assert nll_1 == nll_2 and samples_1 == samples_2  # ...their bases do not, to the last bit
    assert nll_1 == pytest.approx(untouched.mean_nll, rel=1e-6)  # (summed per example here, so not bitwise)


def test_empty_test_split_is_explained(tiny_llama_dir, tmp_path):
    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    with pytest.raises(R1TuneError, match="test split is empty"):
        evaluate(EvalConfig(), loaded, [], tmp_path, precision="fp32", max_seq_len=64, show_progress=False)


def _peft(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    return loaded


def test_evaluate_scores_every_metric_decoding_probe_and_latency(tiny_llama_dir, tmp_path):
    loaded = _peft(tiny_llama_dir)
    cfg = EvalConfig(max_new_tokens=4, batch_size=3, decoding=["greedy", "sampled"], json_schema={"type": "object"},
                     glossary=["ceramic", "wool"], banned_terms=["today"], redteam=["general"], latency_prompts=2,
                     bootstrap_resamples=200)
    records = product_records(5)
    metrics = evaluate(cfg, loaded, records, tmp_path, precision="fp32", max_seq_len=128, show_progress=False, seed=3)
    tuned = metrics.tuned.model_dump()
    # A random model writes no JSON: format validity is an explicit 0 with the reasons counted.
    assert tuned["format_valid"] == 0.0 and tuned["format_n"] == 5 and tuned["format_check"] == "JSON Schema"
    assert sum(tuned["format_reasons"].values()) == 5 and "ok" not in tuned["format_reasons"]
    assert tuned["glossary_n"] == 2  # only the mug (ceramic) and the scarf (wool) references use a term
    assert 0 <= tuned["banned_rate"] <= 100 and tuned["length"]["n"] == 5 and tuned["reasoning"] is None
    latency = tuned["latency"]
    assert latency["single"]["n"] == 2 and latency["single"]["ttft_mean"] > 0 and latency["single"]["tokens_per_s"] > 0
    assert latency["batched"]["throughput_tokens_per_s"] > 0
    assert set(metrics.by_decoding) == {"greedy", "sampled"}
    assert metrics.decoding["sampled"] == {"temperature": loaded.sampling["temperature"],
                                              "top_p": loaded.sampling["top_p"], "seed": 3}
    for key in ("perplexity_change_pct", "rougeL", "bleu", "chrf", "format_valid", "glossary_coverage"):
        assert metrics.ci[key].low <= metrics.ci[key].mean <= metrics.ci[key].high, key
    assert metrics.redteam["n"] == 9 and set(metrics.redteam) >= {"base", "tuned", "regressions", "tuned_worse"}
    probes = [json.loads(line) for line in (tmp_path / "redteam.jsonl").read_text().splitlines()]
    assert len(probes) == 9 and all({"passed", "reasons", "answer"} <= set(p["tuned"]) for p in probes)
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert set(samples[0]["tuned"]["other_decodings"]) == {"sampled"}
    # Perplexity is exp(sum of answer-token NLL / answer tokens), also when built from per-example sums,
    # and equals the training code's answer_loss on the same examples.
    nll = sum(s["tuned"]["nll"] for s in samples)
    tokens = sum(s["tuned"]["answer_tokens"] for s in samples)
    assert tuned["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)
    examples = [loaded.renderer.render_training(r, 128) for r in records]
    reference = answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id, batch_size=2)
    assert tuned["perplexity"] == pytest.approx(reference.perplexity, rel=1e-5)


def test_bad_inputs_give_reasons_not_crashes(tiny_llama_dir, tmp_path):
    from r1tune.data.records import Message, Record
    from r1tune.errors import ConfigError
    from r1tune.eval import check_eval_config

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    records = product_records(3) + [Record([Message("user", "hi"), Message("assistant", "   ")], source="t.jsonl:9")]
    schema = tmp_path / "schema.json"
    schema.write_text("{\"type\": ")
    cfg = EvalConfig(max_new_tokens=3, redteam=[], latency_prompts=0, json_schema=schema)
    with pytest.raises(ConfigError, match="schema.json is not valid JSON"):
        check_eval_config(cfg)  # the pipeline calls this before training
    metrics = evaluate(cfg, loaded, records, tmp_path, precision="fp32", max_seq_len=64, show_progress=False)
    assert metrics.n_examples == 3
    assert metrics.skipped == [{"id": records[3].id, "source": "t.jsonl:9", "reason": "empty reference answer"}]
    assert metrics.tuned.value("format_valid") == 0.0
    assert list(metrics.tuned.value("format_reasons")) == [f"eval.json_schema: {schema} is not valid JSON: "
                                                        "Expecting value (line 1, column 10)"]
    schema.write_text('{"type": "no-such-type"}')
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        check_eval_config(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        check_eval_config(EvalConfig(json_schema=tmp_path / "missing.json"))


def test_unclosed_reasoning_scores_zero_and_is_reported(tiny_qwen_r1_dir, tmp_path):
    loaded = models.load(ModelConfig(name=str(tiny_qwen_r1_dir)))
    cfg = EvalConfig(max_new_tokens=3, redteam=[], latency_prompts=0)
    metrics = evaluate(cfg, loaded, product_records(3), tmp_path, precision="fp32", max_seq_len=96,
                       show_progress=False)
    tuned = metrics.tuned.model_dump()
    # Three random tokens never close the think block the R1 prompt opened: no answer, scored 0, and said so.
    assert tuned["reasoning"]["unclosed"] == 100.0 and tuned["reasoning"]["well_formed"] == 0.0
    assert tuned["empty_answers"] == 3 and tuned["rougeL"] == 0.0 and tuned["unfinished"] == 3
    assert tuned["reasoning"]["length"]["n"] == 3


def test_reasoning_stats_on_known_outputs():
    from r1tune.data.records import Message, Record
    from r1tune.eval.answer_scores import reasoning_stats
    from r1tune.models.generation import Generation

    gens = [Generation("think\n</think>\n\nanswer", "think", "answer", 5, "stop", 0.1),
            Generation("\n</think>\n\nanswer", "", "answer", 4, "stop", 0.1),
            Generation("still thinking", "still thinking", "", 8, "length", 0.1),
            Generation("a</think>b</think>c", "a</think>b", "c", 6, "stop", 0.1)]
    records = [Record([Message("user", "q"), Message("assistant", "answer", reasoning="think")])] * 4
    stats = reasoning_stats(gens, records)
    assert stats["well_formed"] == 50.0  # the first two; the third never closes, the fourth closes twice
    assert stats["unclosed"] == 25.0 and stats["empty"] == 25.0
    # ROUGE-L F vs "think": 100, 0, 0, and 50 for "a</think>b" (tokens a/think/b: p = 1/3, r = 1) -> 37.5
    assert stats["reference_n"] == 4 and stats["rougeL_vs_reference"] == pytest.approx(37.5)


def test_tuned_decoding_through_merged_weights_matches_unmerged_and_restores_the_base(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model

    from r1tune.eval.evaluate import adapter_merged
    from r1tune.models.generation import generate

    loaded = models.load(ModelConfig(name=str(tiny_llama_dir)))
    model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                    init_lora_weights=False))
    prompts = [loaded.renderer.render_prompt(r.messages[:-1]) for r in product_records(3)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    unmerged = [g.text for g in generate(model, loaded.renderer, prompts, max_new_tokens=8)]
    with adapter_merged(model):
        assert any(getattr(m, "merged", False) for m in model.modules())
        merged = [g.text for g in generate(model, loaded.renderer, prompts, max_new_tokens=8)]
    assert merged == unmerged
    assert not any(getattr(m, "merged", False) for m in model.modules())
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, before[name], rtol=0, atol=1e-6)
    with adapter_merged(model, active=False):  # the base pass: nothing is merged
        assert not any(getattr(m, "merged", False) for m in model.modules())


def _fake_judge(prompts: list[str]) -> list[str]:
    """Pairwise: always a tie. Correctness: the answers to refund 0 are correct, refund 1 partially, others
    wrong, whichever model wrote them."""
    replies = []
    for p in prompts:
        if "[Answer to grade]" not in p:
            replies.append('{"winner": "tie", "reason": "same"}')
        else:
            grade = "correct" if "refund 0 " in p else "partially" if "refund 1 " in p else "wrong"
            replies.append(json.dumps({"grade": grade, "reason": f"graded {grade}"}))
    return replies


def test_key_facts_slices_and_judge_correctness_per_example(tiny_llama_dir, tmp_path, monkeypatch):
    from r1tune.data.records import Message, Record
    from r1tune.eval import judge

    loaded = _peft(tiny_llama_dir)
    records = [Record([Message("user", f"How long does refund {i} take?"),
                       Message("assistant", f"Refund {i} takes 5 to 7 business days; call 400-820-8888.")],
                      source=f"faq.jsonl:{i + 1}", meta={"intent": "refund" if i < 2 else "cards"})
               for i in range(4)]
    records[0].meta["key_facts"] = ["the fee is waived"]
    bad = Record([Message("user", "q"), Message("assistant", "a")], source="faq.jsonl:9", meta={"key_facts": 3})
    monkeypatch.setattr(judge, "make_caller", lambda cfg, precision: _fake_judge)
    cfg = EvalConfig(max_new_tokens=6, batch_size=4, redteam=[], latency_prompts=0, bootstrap_resamples=200,
                     judge={"model": "fake", "max_examples": 3})
    metrics = evaluate(cfg, loaded, [*records, bad], tmp_path, precision="fp32", max_seq_len=96,
                       show_progress=False, label_key="intent")
    assert metrics.skipped[0]["reason"] == "meta.key_facts must be a list of strings, got 3"
    for scores in (metrics.base, metrics.tuned):
        # every reference states three facts (the refund number, the days, the hotline)
        assert scores.value("key_fact_n") == 4 and 0 <= scores.value("key_fact_recall") < 100
        assert 0 <= scores.value("invented_facts") <= 100
        # grades 100, 50, 0 on the first three examples (max_examples=3); the fourth is not graded
        assert scores.value("judge_correctness") == pytest.approx(50.0) and scores.value("judge_correctness_n") == 3
    assert {"key_fact_recall", "invented_facts", "judge_correctness"} <= set(metrics.ci)
    assert metrics.judge["correctness"]["tuned"] == {"correct": 1, "partially": 1, "wrong": 1}
    graded = [json.loads(line) for line in (tmp_path / "judge_correctness.jsonl").read_text().splitlines()]
    assert graded[0]["tuned"] == {"grade": "correct", "reason": "graded correct"}
    # one slice dimension (intent); language, source and length have one value each here
    slices = {(s.dimension, s.value): s for s in metrics.slices}
    assert set(slices) == {("intent", "refund"), ("intent", "cards")}
    assert slices["intent", "refund"].tuned["judge_correctness"] == pytest.approx(75.0)
    assert slices["intent", "cards"].tuned["judge_correctness"] == pytest.approx(0.0)
    assert slices["intent", "refund"].n == 2
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [r["tuned"].get("judge_correctness") for r in rows] == [100.0, 50.0, 0.0, None]
