"""Pinned values for r1tune.eval.metrics; every expected number is derived by hand in a comment."""

from __future__ import annotations

import math
import random

import pytest

from r1tune.errors import R1TuneError
from r1tune.eval.metrics import (
    MetricInputError,
    banned_term_rate,
    bleu,
    bootstrap_ci,
    chrf,
    exact_match,
    glossary_coverage,
    json_validity,
    length_stats,
    rouge_l,
    rouge_n,
    score_all,
    script_of,
    sentence_bleu,
    token_f1,
    tokenize_for_rouge,
)

ZH_PRED, ZH_REF = "今天天气很好", "今天天气不错"
# BLEU with tokenize="zh" on ZH_PRED/ZH_REF, one token per character (6 vs 6, so BP = 1):
#   1-grams 今 天 天 气 match, 很 好 do not        -> 4/6
#   2-grams 今天 天天 天气 match of 5               -> 3/5
#   3-grams 今天天 天天气 match of 4                -> 2/4
#   4-grams 今天天气 matches of 3                   -> 1/3
#   BLEU = 100 * (4/6 * 3/5 * 2/4 * 1/3) ** (1/4) = 100 * (1/15) ** 0.25
ZH_BLEU = 100 * (1 / 15) ** 0.25  # 50.81


# --- tokenization and script detection -------------------------------------------------------------


def test_tokenize_cjk_per_character_words_lowercased_in_order() -> None:
    # Full-width ＡＰＩ１ becomes api1 under NFKC; punctuation (，and the apostrophe) separates tokens.
    assert tokenize_for_rouge("用API接口，ＡＰＩ１ don't 2024年") == [
        "用", "api", "接", "口", "api1", "don", "t", "2024", "年",
    ]


def test_tokenize_keeps_combining_marks_inside_words_and_drops_punctuation_only_text() -> None:
    assert tokenize_for_rouge("नमस्ते Café") == ["नमस्ते", "café"]
    assert tokenize_for_rouge("。！？…") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天天气很好", "zh"),
        ("hello world", "en"),
        ("请调用API", "zh"),  # 3 CJK chars vs 1 word
        ("Please call the 接口 API now", "en"),  # 2 CJK chars vs 5 words
        ("好 ok", "zh"),  # tie goes to zh
        ("2024", "en"),  # digits are script-neutral, no CJK
        ("", "en"),
    ],
)
def test_script_of(text: str, expected: str) -> None:
    assert script_of(text) == expected


# --- ROUGE ------------------------------------------------------------------------------------------


def test_rouge_l_chinese_by_hand() -> None:
    # pred 我喜欢吃红苹果 = 7 chars, ref 我很喜欢苹果 = 6 chars; LCS = 我 喜 欢 苹 果 = 5
    # p = 5/7, r = 5/6, f = 2pr/(p+r) = (50/42) / (65/42) = 10/13
    scores = rouge_l("我喜欢吃红苹果", "我很喜欢苹果")
    assert scores["p"] == pytest.approx(5 / 7)
    assert scores["r"] == pytest.approx(5 / 6)
    assert scores["f"] == pytest.approx(10 / 13)


def test_rouge_l_english_by_hand() -> None:
    # pred: the cat was sitting on the mat today (8), ref: the cat sat on the mat (6)
    # LCS = the cat on the mat = 5; p = 5/8, r = 5/6, f = (50/48) / (35/24) = 5/7
    scores = rouge_l("The cat was sitting on the mat today.", "the cat sat on the mat")
    assert scores == pytest.approx({"p": 5 / 8, "r": 5 / 6, "f": 5 / 7})


def test_rouge_1_and_2_chinese_by_hand() -> None:
    # unigrams: pred {我 喜 欢 吃 红 苹 果}, ref {我 很 喜 欢 苹 果}: overlap 5 -> p 5/7, r 5/6, f 10/13
    pred, ref = "我喜欢吃红苹果", "我很喜欢苹果"
    assert rouge_n(pred, ref, 1) == pytest.approx({"p": 5 / 7, "r": 5 / 6, "f": 10 / 13})
    # bigrams: pred 我喜 喜欢 欢吃 吃红 红苹 苹果 (6), ref 我很 很喜 喜欢 欢苹 苹果 (5)
    # overlap 喜欢, 苹果 = 2; p = 2/6, r = 2/5, f = (4/15) / (11/15) = 4/11
    assert rouge_n(pred, ref, 2) == pytest.approx({"p": 1 / 3, "r": 2 / 5, "f": 4 / 11})


def test_rouge_l_bit_parallel_lcs_matches_a_plain_dp_table() -> None:
    def plain_lcs(a: list[str], b: list[str]) -> int:
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
        return table[-1][-1]

    rng = random.Random(3)
    for _ in range(300):
        pred = "".join(rng.choice("天气好很不错") for _ in range(rng.randint(0, 12)))
        ref = "".join(rng.choice("天气好很不错") for _ in range(rng.randint(1, 12)))
        lcs = plain_lcs(list(pred), list(ref))
        expected_r = lcs / len(ref)
        assert rouge_l(pred, ref)["r"] == pytest.approx(expected_r), (pred, ref)


def test_rouge_1_clips_repeated_tokens() -> None:
    # pred the×3 cat, ref the cat sat: clipped overlap = min(3,1) + 1 = 2; p 2/4, r 2/3, f (2/3)/(7/6) = 4/7
    assert rouge_n("the the the cat", "the cat sat", 1) == pytest.approx({"p": 0.5, "r": 2 / 3, "f": 4 / 7})


def test_rouge_empty_prediction_is_zero_and_bad_n_raises() -> None:
    assert rouge_l("", "参考答案") == {"p": 0.0, "r": 0.0, "f": 0.0}
    assert rouge_n("", "reference", 1) == {"p": 0.0, "r": 0.0, "f": 0.0}
    with pytest.raises(MetricInputError, match="n >= 1, got 0"):
        rouge_n("a", "a", 0)


def test_rouge_score_default_tokenizer_drops_chinese_but_ours_does_not() -> None:
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    default = rouge_scorer.RougeScorer(["rouge1"]).score(ZH_REF, ZH_PRED)["rouge1"].fmeasure
    assert default == 0.0  # the trap this module exists to avoid
    assert rouge_n(ZH_PRED, ZH_REF, 1)["f"] == pytest.approx(4 / 6)  # 4 shared chars of 6 on each side


def test_rouge_matches_rouge_score_on_english() -> None:
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    pred, ref = "the cat was sitting on the mat today", "the cat sat on the mat"
    theirs = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(ref, pred)
    assert rouge_n(pred, ref, 1)["f"] == pytest.approx(theirs["rouge1"].fmeasure)
    assert rouge_n(pred, ref, 2)["f"] == pytest.approx(theirs["rouge2"].fmeasure)
    assert rouge_l(pred, ref)["f"] == pytest.approx(theirs["rougeL"].fmeasure)


# --- token F1 and exact match -----------------------------------------------------------------------


def test_token_f1_by_hand() -> None:
    # 北 京 是 首 都 (5) vs 首 都 北 京 (4): overlap 4, p 4/5, r 4/4, f = 1.6/1.8 = 8/9
    assert token_f1("北京是首都", "首都北京") == pytest.approx(8 / 9)
    # [paris, france] vs [paris]: overlap 1, p 1/2, r 1, f = 1/1.5 = 2/3
    assert token_f1("Paris, France", "paris") == pytest.approx(2 / 3)
    assert token_f1("", "paris") == 0.0
    assert token_f1("。", "！") == 1.0  # both have no tokens: equal


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("北京。", "北京", 1.0),
        ("“北京”！", "北京", 1.0),  # Chinese quotes and exclamation are punctuation
        ("《北京》，", "北京", 1.0),
        ("ＢＥＩＪＩＮＧ，", "beijing", 1.0),  # NFKC turns full-width into ASCII, then casefold
        ("  New York ", "newyork", 1.0),  # whitespace is removed, not just trimmed
        ("北京市", "北京", 0.0),
        ("", "北京", 0.0),
    ],
)
def test_exact_match(pred: str, ref: str, expected: float) -> None:
    assert exact_match(pred, ref) == expected


# --- BLEU and chrF ----------------------------------------------------------------------------------


def test_bleu_identical_is_100() -> None:
    result = bleu(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert result["score"] == pytest.approx(100.0)
    assert result["tokenize"] == "13a"
    assert "tok:13a" in result["signature"]


def test_bleu_brevity_penalty_by_hand() -> None:
    # hyp the cat sat on the (5) vs ref the cat sat on the mat (6): every n-gram of hyp matches,
    # precisions 5/5 4/4 3/3 2/2 = 1, BP = exp(1 - 6/5) = exp(-0.2) -> 81.87
    result = bleu(["the cat sat on the"], ["the cat sat on the mat"])
    assert result["score"] == pytest.approx(100 * math.exp(-0.2))


def test_bleu_zh_tokenizer_scores_chinese_where_13a_gives_zero() -> None:
    from sacrebleu.metrics import BLEU

    assert BLEU(tokenize="13a").corpus_score([ZH_PRED], [[ZH_REF]]).score == 0.0  # one "word" each, no match
    result = bleu([ZH_PRED], [ZH_REF])
    assert result["tokenize"] == "zh"
    assert result["score"] == pytest.approx(ZH_BLEU)
    assert result["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:")


def test_bleu_mixed_corpus_reports_groups_and_overall_with_zh() -> None:
    # zh group: ZH_BLEU. en group: the brevity-penalty case, 100 * exp(-0.2).
    # overall (tok zh) sums counts: 1-grams (4+5)/(6+5), 2: (3+4)/(5+4), 3: (2+3)/(4+3), 4: (1+2)/(3+2)
    # product 9/11 * 7/9 * 5/7 * 3/5 = 3/11; hyp 11 tokens vs ref 12 -> BP = exp(1 - 12/11) = exp(-1/11)
    result = bleu([ZH_PRED, "the cat sat on the"], [ZH_REF, "the cat sat on the mat"])
    assert result["tokenize"] == "zh"
    assert result["score"] == pytest.approx(100 * math.exp(-1 / 11) * (3 / 11) ** 0.25)  # 65.99
    assert result["by_script"]["zh"]["score"] == pytest.approx(ZH_BLEU)
    assert result["by_script"]["en"]["score"] == pytest.approx(100 * math.exp(-0.2))
    assert result["by_script"]["zh"]["n"] == 1 and "tok:13a" in result["by_script"]["en"]["signature"]


def test_sentence_bleu_picks_tokenizer_per_reference() -> None:
    assert sentence_bleu(ZH_PRED, ZH_REF) == pytest.approx(ZH_BLEU)
    # effective order: hyp "the cat" has only 1- and 2-grams, both fully matched; BP = exp(1 - 3/2)
    assert sentence_bleu("the cat", "the cat sat") == pytest.approx(100 * math.exp(-0.5))
    assert sentence_bleu("好", "好") == pytest.approx(100.0)
    assert sentence_bleu("", "好") == 0.0


def test_chrf_by_hand() -> None:
    # char n-grams n=1..6 of 6-char strings, so precision = recall at each order:
    # 4/6, 3/5, 2/4, 1/3, 0/2, 0/1 -> mean (2/3 + 3/5 + 1/2 + 1/3) / 6 = 2.1 / 6 = 0.35 -> chrF 35.0
    assert chrf([ZH_PRED], [ZH_REF]) == pytest.approx(35.0)
    assert chrf(["abc"], ["abc"]) == pytest.approx(100.0)
    assert chrf([""], ["abc"]) == 0.0


# --- JSON validity ----------------------------------------------------------------------------------

SELF_REFERENCING = {"$defs": {"x": {"$ref": "#/$defs/x"}}, "$ref": "#/$defs/x"}  # recurses forever
SCHEMA = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}


def test_json_valid_bare_and_fenced() -> None:
    assert json_validity('{"amount": 12.5}', SCHEMA) == (True, "ok")
    fenced = '这是结果：\n```json\n{"amount": 3}\n```\n以上。'
    assert json_validity(fenced, SCHEMA) == (True, "ok")
    assert json_validity("[1, 2]", None) == (True, "ok")


def test_json_invalid_and_empty() -> None:
    expected = "invalid JSON: Expecting ',' delimiter (line 1, column 13)"
    assert json_validity('{"amount": 1', None) == (False, expected)
    assert json_validity("", SCHEMA) == (False, "empty prediction")
    assert json_validity("```json\n```", None) == (False, "empty prediction")


def test_json_schema_violation_names_the_path() -> None:
    expected = "schema violation at $.amount: '12' is not of type 'number'"
    assert json_validity('{"amount": "12"}', SCHEMA) == (False, expected)
    assert json_validity("{}", SCHEMA) == (False, "schema violation at $: 'amount' is a required property")


@pytest.mark.parametrize(
    ("schema", "reason_start"),
    [
        ({"type": "bogus"}, "schema invalid: 'bogus' is not valid"),
        ({"type": "string", "pattern": "["}, "schema invalid: '[' is not a 'regex'"),
        ({"$ref": "#/nope"}, "schema invalid: unresolvable $ref"),
        (["not", "a", "schema"], "schema invalid: expected a JSON object, got list"),
        ({"$schema": []}, "schema invalid: cannot be applied (TypeError"),
        (SELF_REFERENCING, "schema invalid: cannot be applied (RecursionError"),
    ],
)
def test_json_bad_schema_is_reported_not_raised(schema: object, reason_start: str) -> None:
    ok, reason = json_validity('"x"', schema)  # type: ignore[arg-type]
    assert ok is False
    assert reason.startswith(reason_start)


# --- glossary and banned terms ----------------------------------------------------------------------


def test_glossary_coverage() -> None:
    text = "请通过api网关访问数据库。"
    # API matches api (case-insensitive), 网关 matches, Redis is missing -> 2/3
    assert glossary_coverage(text, ["API", "网关", "Redis"]) == pytest.approx(2 / 3)
    assert glossary_coverage("the capital city", ["API"]) == 0.0  # word boundary for Latin terms
    assert glossary_coverage("", ["API"]) == 0.0
    assert glossary_coverage("anything", []) == 1.0


def test_banned_term_rate_is_binary_per_example() -> None:
    assert banned_term_rate("这是竞品A的方案", ["竞品", "secret"]) == 1.0
    assert banned_term_rate("Top SECRET and 竞品", ["竞品", "secret"]) == 1.0  # two hits still 1.0
    assert banned_term_rate("ask the secretary", ["secret"]) == 0.0
    assert banned_term_rate("", ["secret"]) == 0.0
    assert banned_term_rate("anything", []) == 0.0


def test_blank_terms_raise() -> None:
    with pytest.raises(MetricInputError, match=r"index \[1\]"):
        glossary_coverage("x", ["API", "  "])


# --- length stats and bootstrap ---------------------------------------------------------------------


def test_length_stats_by_hand() -> None:
    # tokens: 6 (chars), 3, 10 -> sorted [3, 6, 10]; p90 at position 0.9 * 2 = 1.8 -> 6 + 0.8 * 4 = 9.2
    # chars: 6, 11, 19 -> mean 12, median 11, p90 = 11 + 0.8 * 8 = 17.4
    stats = length_stats([ZH_PRED, "the cat sat", "a b c d e f g h i j"])
    assert stats["n"] == 3
    assert stats["tokens"] == pytest.approx({"mean": 19 / 3, "median": 6, "p90": 9.2, "min": 3, "max": 10})
    assert stats["chars"] == pytest.approx({"mean": 12, "median": 11, "p90": 17.4, "min": 6, "max": 19})
    with pytest.raises(MetricInputError, match="at least one text"):
        length_stats([])


def test_bootstrap_is_deterministic_and_contains_the_mean() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    first, again = bootstrap_ci(values, seed=7), bootstrap_ci(values, seed=7)
    assert first == again
    assert first["mean"] == pytest.approx(0.7)
    assert 0.0 <= first["low"] <= 0.7 <= first["high"] <= 1.0
    assert first["low"] < first["high"]
    assert bootstrap_ci(values, seed=8)["n_resamples"] == 1000 and first["paired"] is False


def test_bootstrap_paired_delta() -> None:
    a, b = [0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5]
    result = bootstrap_ci(a, b, n_resamples=200)
    # deltas 0.4 0.3 0.2 0.1, mean 0.25; every resampled mean lies within [0.1, 0.4]
    assert result["mean"] == pytest.approx(0.25) and result["paired"] is True
    assert 0.1 <= result["low"] <= 0.25 <= result["high"] <= 0.4
    constant = bootstrap_ci([2.0, 2.0, 2.0])
    assert (constant["low"], constant["mean"], constant["high"]) == (2.0, 2.0, 2.0)


def test_bootstrap_bad_inputs() -> None:
    with pytest.raises(MetricInputError, match="got 3 and 2"):
        bootstrap_ci([1, 2, 3], [1, 2])
    with pytest.raises(MetricInputError, match="values_a must be a non-empty list of finite numbers"):
        bootstrap_ci([])
    with pytest.raises(MetricInputError, match="finite"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(MetricInputError, match="0 < alpha < 1"):
        bootstrap_ci([1.0], alpha=1.5)


# --- score_all and bad inputs -----------------------------------------------------------------------


def test_score_all_identical_is_perfect() -> None:
    report = score_all([ZH_REF, "the cat sat on the mat"], [ZH_REF, "the cat sat on the mat"])
    for key in ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "token_f1"):
        assert report[key] == pytest.approx(100.0), key
    assert report["n"] == 2
    assert report["rouge_tokenizer"] == "characters for Chinese, words otherwise"
    assert "tok:zh" in report["bleu_signature"]
    perfect = {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0, "bleu": 100.0, "token_f1": 100.0,
               "exact_match": 100.0}
    assert report["per_example"][1] == pytest.approx(perfect)


def test_score_all_scores_the_decoders_answers_and_empty_ones_as_zero() -> None:
    from r1tune.models.decoding import split_reasoning

    outputs = ["<think>\n先分析</think>\n" + ZH_PRED, "<think>cut off", ""]
    answers = [split_reasoning(o, think=True)[1] for o in outputs]
    report = score_all(answers, [ZH_REF, "the answer", "另一个答案"])
    # example 0: rouge-L 4/6 (LCS 今天天气) -> 66.67; examples 1 and 2 score 0 -> mean 22.22
    assert report["rougeL"] == pytest.approx(100 * (2 / 3) / 3)
    assert report["per_example"][0]["rougeL"] == pytest.approx(200 / 3)
    assert report["per_example"][0]["bleu"] == pytest.approx(ZH_BLEU)
    assert [row["rougeL"] for row in report["per_example"][1:]] == [0.0, 0.0]


def test_mismatched_lengths_name_both() -> None:
    with pytest.raises(MetricInputError, match="got 3 predictions but 2 references"):
        score_all(["a", "b", "c"], ["a", "b"])
    with pytest.raises(MetricInputError, match="got 1 predictions but 2 references"):
        bleu(["a"], ["a", "b"])
    with pytest.raises(MetricInputError, match="got 0 predictions but 1 references"):
        chrf([], ["a"])


def test_empty_reference_names_the_index() -> None:
    with pytest.raises(MetricInputError, match=r"empty reference at example index \[2\] \(of 3\)"):
        score_all(["a", "b", "c"], ["a", "b", "  "])
    with pytest.raises(MetricInputError, match=r"index \[0\]"):
        bleu(["a"], [""])
    with pytest.raises(MetricInputError, match="reference is empty"):
        rouge_l("a", "")
    for fn in (rouge_l, token_f1, exact_match, sentence_bleu):
        with pytest.raises(MetricInputError):
            fn("a", " ")


def test_other_bad_inputs() -> None:
    with pytest.raises(MetricInputError, match="lists of strings, got a single string"):
        bleu("今天", "今天")  # type: ignore[arg-type]
    with pytest.raises(MetricInputError, match="no examples"):
        score_all([], [])
    with pytest.raises(MetricInputError, match=r"predictions at index \[1\] are not strings"):
        score_all(["a", None], ["a", "b"])  # type: ignore[list-item]
    with pytest.raises(MetricInputError, match="prediction must be a string, got NoneType"):
        token_f1(None, "a")  # type: ignore[arg-type]


def test_metric_input_error_is_value_error_and_r1tune_error() -> None:
    err = MetricInputError("bad")
    assert isinstance(err, ValueError) and isinstance(err, R1TuneError)
    assert str(err) == "bad"
