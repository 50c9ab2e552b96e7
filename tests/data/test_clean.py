"""Cleaning steps one by one, the filters, step order and the PII step inside the record cleaner."""

from __future__ import annotations

import pytest

from r1tune.config import CleanConfig, PiiConfig
from r1tune.data.clean import (
    RecordCleaner,
    clean_ratio,
    detect_language,
    html_to_text,
    load_terms,
    nfkc,
    normalize_whitespace,
    repetition_share,
    strip_control,
)
from r1tune.errors import ConfigError

ALL_TEXT = ["nfkc", "control_chars", "html_to_text", "whitespace", "regex_remove", "opencc", "terms"]


def _record(answer: str, prompt: str = "问题") -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "meta": {}, "source": "f:1", "id": ""}


def _cleaner(steps=None, pii=False, **clean) -> RecordCleaner:
    return RecordCleaner(steps or ALL_TEXT, CleanConfig(**clean), PiiConfig(enabled=pii))


def test_nfkc_folds_fullwidth_letters_but_keeps_chinese_punctuation():
    assert nfkc("ＡＢＣ１２３，价格：９９元！") == "ABC123，价格：99元！"
    assert nfkc("ﬁne") == "fine" and nfkc("plain ascii") == "plain ascii"


def test_control_characters_and_zero_width_marks_are_removed():
    assert strip_control("a\x00b\u200bc\ufeffd\r\ne\tf") == "abcd\ne\tf"


def test_html_to_text_only_touches_html():
    assert html_to_text("<p>Hello <b>world</b></p><p>Line&nbsp;2<br>Line 3</p>") == "Hello world\nLine 2\nLine 3"
    assert html_to_text("if a < b and c > d") == "if a < b and c > d"
    assert html_to_text("Fish &amp; chips") == "Fish & chips"
    assert html_to_text("<script>alert(1)</script>visible") == "visible"


def test_whitespace_keeps_indentation_and_single_blank_lines():
    text = "def f():\n    return  1   \n\n\n\nnext\u3000word\u00a0here "
    assert normalize_whitespace(text) == "def f():\n    return 1\n\nnext word here"


def test_opencc_terms_and_regex_steps():
    cleaner = _cleaner(opencc="t2s", terms={"手機殼": "wrong", "手机壳": "保护壳", "iphone": "iPhone"},
                       regex_remove=[r"【广告】.*?】"])
    record = _record("這個手機殼適合iphone 15【广告】关注我们】")
    result = cleaner.clean(record)
    # order matters: opencc runs before terms, so the simplified variant is the one standardised
    assert result.record["messages"][1]["content"] == "这个保护壳适合iPhone 15"
    assert ("clean", "changed by regex_remove, opencc, terms", "changed") in result.issues
    plain = _cleaner(terms={"ai": "AI"}).clean(_record("said ai, not maid")).record
    assert plain["messages"][1]["content"] == "said AI, not maid"  # ASCII terms match whole words only


def test_terms_file_csv_and_yaml(tmp_path):
    (tmp_path / "t.csv").write_text("# variant,canonical\n客服,客户服务\n售后,售后服务\n", encoding="utf-8")
    assert load_terms(CleanConfig(terms_file=tmp_path / "t.csv")) == {"客服": "客户服务", "售后": "售后服务"}
    (tmp_path / "t.yaml").write_text("SKU: 货号\n", encoding="utf-8")
    assert load_terms(CleanConfig(terms={"a": "b"}, terms_file=tmp_path / "t.yaml")) == {"a": "b", "SKU": "货号"}
    (tmp_path / "bad.csv").write_text("only-one-column\n")
    with pytest.raises(ConfigError, match="bad.csv:1: expected 'variant,canonical'"):
        load_terms(CleanConfig(terms_file=tmp_path / "bad.csv"))
    with pytest.raises(ConfigError, match="terms_file: file not found"):
        load_terms(CleanConfig(terms_file=tmp_path / "missing.csv"))


def test_invalid_regex_is_a_config_error():
    with pytest.raises(ConfigError, match=r"regex_remove: '\(unclosed' is not a valid regex"):
        _cleaner(regex_remove=["(unclosed"])


def test_filters_reject_with_reasons():
    steps = ["length_filter", "language_filter", "repetition_filter", "garbage_filter"]
    cleaner = _cleaner(steps, min_answer_chars=4, max_chars=60, languages=["zh"])
    cases = {
        "好": "answer shorter than 4 characters",
        "这是一个足够长的回答。" * 8: "longer than 60 characters",
        "This answer is English only.": "language en not in ['zh']",
    }
    for answer, reason in cases.items():
        result = cleaner.clean(_record(answer))
        assert result.record is None and result.issues[0][0] == "filter" and result.issues[0][1].startswith(reason)
    loop = _cleaner(["repetition_filter"]).clean(_record("买它买它买它！" * 12))
    assert loop.record is None and loop.issues[0][1].startswith("repetitive text")
    junk = _cleaner(["garbage_filter"]).clean(_record("锟斤拷锟斤拷烫烫烫��� Ã©Ã©Ã© ▒▒▒▒"))
    assert junk.record is None and junk.issues[0][1].startswith("garbled text")
    fine = _cleaner(steps, languages=["zh", "en"]).clean(_record("这款杯子容量350ml，适合办公室使用。"))
    assert fine.record is not None and not fine.issues and fine.lang == "zh"


def test_measures_behind_the_filters():
    assert repetition_share("哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈") > 0.9
    assert repetition_share("A normal sentence about a blue ceramic mug that holds coffee.") == 0.0
    assert repetition_share("Total\n---------------------------\nItem A 1\n---------------------------\n") == 0.0
    assert clean_ratio("正常的中文，English mixed 123。") == 1.0
    assert detect_language("这是一段中文说明，提到了 iPhone 和 USB-C 接口") == "zh"
    assert detect_language("English with 一点 Chinese") == "en"
    assert detect_language("Привет мир") == "other"


def test_answer_emptied_by_cleaning_is_rejected():
    result = _cleaner(["html_to_text"]).clean(_record("<p>&nbsp;</p><script>x</script>"))
    assert result.record is None and result.issues[-1] == ("filter", "answer is empty after cleaning", "rejected")


def test_pii_step_masks_every_text_and_counts_types():
    cleaner = _cleaner(["pii"], pii=True)
    record = _record("已登记，手机13812345678", "我的邮箱是 zhang.san@example.com")
    record["messages"][1]["reasoning"] = "用户手机13812345678"
    record["meta"]["rejected"] = "电话13812345678"
    result = cleaner.clean(record)
    texts = [result.record["messages"][0]["content"], result.record["messages"][1]["content"],
             result.record["messages"][1]["reasoning"], result.record["meta"]["rejected"]]
    assert texts == ["我的邮箱是 [EMAIL]", "已登记，手机[PHONE]", "用户手机[PHONE]", "电话[PHONE]"]
    assert result.pii == {"PHONE": 3, "EMAIL": 1}
    assert ("pii", "masked EMAIL×1, PHONE×3", "changed") in result.issues
    lookalike = cleaner.clean(_record("订单号20240512123456已发货"))
    assert lookalike.record["messages"][1]["content"] == "订单号20240512123456已发货" and not lookalike.issues


def test_hash_strategy_without_salt_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a secret salt"):
        RecordCleaner(["pii"], CleanConfig(), PiiConfig(strategy="hash"))
