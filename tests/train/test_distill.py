"""Logit distillation: the divergences equal hand-computed values on a toy vocabulary, a student taught by
its own copy pays only the weighted NLL, training with a teacher runs, and a teacher with another tokenizer
is refused before its weights load."""

from __future__ import annotations

import math

import pytest
import torch

from r1tune.models.scoring import summed_divergence

STUDENT = [[0.0, math.log(2), 0.0], [math.log(3), 0.0, 0.0]]  # softmax: [1/4, 1/2, 1/4], [3/5, 1/5, 1/5]
TEACHER = [[math.log(2), 0.0, 0.0], [0.0, 0.0, 0.0]]  # softmax: [1/2, 1/4, 1/4], [1/3, 1/3, 1/3]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_divergences_match_hand_computed_values():
    s = [[1 / 4, 1 / 2, 1 / 4], [3 / 5, 1 / 5, 1 / 5]]
    t = [[1 / 2, 1 / 4, 1 / 4], [1 / 3, 1 / 3, 1 / 3]]
    student, teacher = torch.tensor(STUDENT), torch.tensor(TEACHER)
    forward = sum(_kl(ti, si) for si, ti in zip(s, t, strict=True))  # 0.25 ln 2 + (ln(5/9) + 2 ln(5/3))/3
    assert float(summed_divergence(student, teacher, "forward_kl")) == pytest.approx(forward, rel=1e-5)
    reverse = sum(_kl(si, ti) for si, ti in zip(s, t, strict=True))
    assert float(summed_divergence(student, teacher, "reverse_kl")) == pytest.approx(reverse, rel=1e-5)
    mixtures = [[(a + b) / 2 for a, b in zip(si, ti, strict=True)] for si, ti in zip(s, t, strict=True)]
    jsd = sum(0.5 * _kl(ti, m) + 0.5 * _kl(si, m) for si, ti, m in zip(s, t, mixtures, strict=True))
    assert float(summed_divergence(student, teacher, "jsd")) == pytest.approx(jsd, rel=1e-5)


def test_temperature_softens_both_and_scales_by_its_square():
    student, teacher = torch.tensor(STUDENT[:1]), torch.tensor(TEACHER[:1])
    soft_s = [x / sum(math.exp(v / 2) for v in STUDENT[0]) for x in (math.exp(v / 2) for v in STUDENT[0])]
    soft_t = [x / sum(math.exp(v / 2) for v in TEACHER[0]) for x in (math.exp(v / 2) for v in TEACHER[0])]
    expected = 4 * _kl(soft_t, soft_s)
    assert float(summed_divergence(student, teacher, "forward_kl", temperature=2.0)) == pytest.approx(expected, rel=1e-5)


def test_a_student_taught_by_its_own_copy_pays_only_the_weighted_nll(tiny_llama_dir):
    import copy

    from transformers import AutoModelForCausalLM

    from r1tune.models.scoring import with_label_index
    from r1tune.train.objective import AnswerObjective, DistillObjective

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = torch.tensor([[1, 20, 300, 4000, 50, 7, 88]])
    batch = with_label_index({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                              "labels": torch.tensor([[-100, -100, -100, 4000, 50, 7, 88]])})
    nll = AnswerObjective(model)(batch)
    distilled = DistillObjective(model, copy.deepcopy(model), 0.3, "forward_kl", 1.0)(batch)
    assert float(distilled) == pytest.approx(0.3 * float(nll), rel=1e-4)


def test_training_with_a_teacher_and_refusing_another_tokenizer(tiny_llama_dir, tiny_qwen_r1_dir, tmp_path):
    from helpers import write_project
    from typer.testing import CliRunner

    from r1tune.cli import app
    from r1tune.errors import ConfigError

    runner = CliRunner()
    (tmp_path / "ok").mkdir()
    (tmp_path / "bad").mkdir()
    config = write_project(tmp_path / "ok", tiny_llama_dir, n_records=12)
    result = runner.invoke(app, ["run", str(config), "train.max_steps=2", f"train.distill_teacher={tiny_llama_dir}",
                                 "eval.reasoning_probes=0", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = write_project(tmp_path / "bad", tiny_llama_dir, n_records=12)
    with pytest.raises(ConfigError, match="does not share the student's tokenizer"):
        runner.invoke(app, ["run", str(config), "train.max_steps=2", f"train.distill_teacher={tiny_qwen_r1_dir}",
                            "--no-progress"], catch_exceptions=False)
