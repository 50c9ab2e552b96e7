"""Preference stages: the DPO and KTO losses equal hand-computed values, a pair's chosen and rejected token
spans are exactly the two answers (same prompt, same framing, R1's real tokenizer), the reference is the
starting weights (the first step of pure DPO costs ln 2 per pair), DPO training makes the chosen answers
win, and combinations that cannot work are refused."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import PRODUCTS, write_project
from typer.testing import CliRunner

from r1tune.cli import app
from r1tune.data.records import Message, Record
from r1tune.errors import ConfigError
from r1tune.models.chat_format import ChatRenderer, chat_format_for
from r1tune.train.preference import KIND_CODES, build_units, preference_losses


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_dpo_loss_matches_the_formula_with_and_without_the_sft_term():
    # two pairs and a plain answer; rows: chosen x3, then the pairs' rejected x2
    logp = torch.tensor([-4.0, -6.0, -9.0, -5.0, -5.5])
    tokens = torch.tensor([2, 3, 3, 2, 4])
    batch = {"kind": torch.tensor([KIND_CODES["pair"], KIND_CODES["pair"], KIND_CODES["sft"]]),
             "desirable": torch.tensor([False, False, False]),
             "ref_chosen": torch.tensor([-4.5, -5.0, 0.0], dtype=torch.float64),
             "ref_rejected": torch.tensor([-4.0, -6.5, 0.0], dtype=torch.float64)}
    beta = 0.5
    margins = [(-4.0 + 4.5) - (-5.0 + 4.0), (-6.0 + 5.0) - (-5.5 + 6.5)]
    pure = preference_losses(logp, tokens, batch, beta, sft_weight=0.0)
    assert pure[0] == pytest.approx(-math.log(_sigmoid(beta * margins[0])), rel=1e-6)
    assert pure[1] == pytest.approx(-math.log(_sigmoid(beta * margins[1])), rel=1e-6)
    assert pure[2] == pytest.approx(9.0 / 3)  # a plain answer: per-token NLL
    with_sft = preference_losses(logp, tokens, batch, beta, sft_weight=2.0)
    assert with_sft[0] == pytest.approx(float(pure[0]) + 2.0 * 4.0 / 2, rel=1e-6)
    assert with_sft[1] == pytest.approx(float(pure[1]) + 2.0 * 6.0 / 3, rel=1e-6)


def test_kto_loss_matches_the_formula_with_its_clamped_reference_point():
    logp = torch.tensor([-3.0, -8.0, -2.0])
    batch = {"kind": torch.tensor([KIND_CODES["kto"]] * 3), "desirable": torch.tensor([True, False, True]),
             "ref_chosen": torch.tensor([-4.0, -7.0, -2.5]), "ref_rejected": torch.zeros(3)}
    rewards = [1.0, -1.0, 0.5]
    z = max(0.0, sum(rewards) / 3)
    expected = [1 - _sigmoid(0.1 * (rewards[0] - z)), 1 - _sigmoid(0.1 * (z - rewards[1])),
                1 - _sigmoid(0.1 * (rewards[2] - z))]
    got = preference_losses(logp, torch.tensor([1, 1, 1]), batch, 0.1, sft_weight=1.0)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_chosen_and_rejected_spans_are_exactly_the_answers(r1_tokenizer, stage):
    renderer = ChatRenderer(chat_format_for("deepseek-r1", r1_tokenizer, None), r1_tokenizer)
    record = Record([Message("user", "退货运费谁付？ Who pays return shipping?"),
                     Message("assistant", "The shop pays it within 30 days.")],
                    meta={"rejected": "You pay it, always."})
    chosen = renderer.render_training(record, 256)
    units, record_of = build_units(stage, renderer, [record], [chosen], [0], 256)
    answers = ([units[0].chosen, units[0].rejected] if stage == "dpo" else [u.chosen for u in units])
    assert record_of == [0] * len(units)
    if stage == "kto":
        assert [u.desirable for u in units] == [True, False]
    prompts, spans = [], []
    for answer in answers:
        first = answer.trained.index(True)
        assert all(answer.trained[first:])  # one trained span, to the end
        prompts.append(answer.input_ids[:first])
        spans.append(r1_tokenizer.decode(answer.input_ids[first:]))
    assert prompts[0] == prompts[1]  # the same prompt, token for token
    eos = r1_tokenizer.eos_token
    assert spans == [f"\n</think>\n\nThe shop pays it within 30 days.{eos}", f"\n</think>\n\nYou pay it, always.{eos}"]


def _preference_project(tmp_path, model_dir, n: int = 24) -> object:
    rows = []
    for i in range(n):
        name, material, color = PRODUCTS[i % len(PRODUCTS)]
        rows.append({"prompt": f"What is the {color} {name} #{i} made of?", "chosen": f"It is made of {material}.",
                     "rejected": "I do not know."})
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_project(tmp_path, model_dir, n_records=4)
    config.write_text(config.read_text().replace("sources: [{path: data.jsonl}]",
                                                 "sources: [{path: prefs.jsonl, format: preference}]"))
    return config


def _train(config, *overrides):
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", str(config), *overrides], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = max((config.parent / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    result = runner.invoke(app, ["train", str(run), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "train" / "train_metrics.jsonl").read_text().splitlines()]
    return json.loads((run / "train" / "train_summary.json").read_text()), rows


def test_the_reference_is_the_starting_weights(tiny_llama_dir, tmp_path):
    config = _preference_project(tmp_path, tiny_llama_dir)
    summary, rows = _train(config, "train.stage=dpo", "train.pref_sft_weight=0", "train.max_steps=1")
    assert summary["stage"] == "dpo"
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # margin 0 for every pair at the start


def test_dpo_training_makes_the_chosen_answers_win(tiny_llama_dir, tmp_path):
    config = _preference_project(tmp_path, tiny_llama_dir)
    summary, rows = _train(config, "train.stage=dpo", "train.max_steps=12", "train.lr=0.003")
    assert summary["preference_accuracy"] >= 0.9
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_kto_training_runs_on_pairs_split_into_thumbs(tiny_llama_dir, tmp_path):
    config = _preference_project(tmp_path, tiny_llama_dir)
    summary, rows = _train(config, "train.stage=kto", "train.max_steps=3")
    assert summary["stage"] == "kto" and summary["preference_accuracy"] is None
    assert all(math.isfinite(r["loss"]) for r in rows)


@pytest.mark.parametrize(("override", "message"), [
    ("train.packing=true", "train.stage: dpo cannot be combined with train.packing: true"),
    ("train.distill_teacher=x", "train.stage: dpo cannot be combined with train.distill_teacher"),
])
def test_impossible_combinations_are_refused(tiny_llama_dir, tmp_path, override, message):
    config = _preference_project(tmp_path, tiny_llama_dir)
    with pytest.raises(ConfigError, match=message):
        CliRunner().invoke(app, ["prepare", str(config), "train.stage=dpo", override], catch_exceptions=False)
