"""Person names in free text (no cue word), the harder labelled set, public-figure scope, the learned
tagger option, and inputs that must not crash or be cut: long records, mixed scripts, full-width digits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from r1tune.data.pii import PiiDetector, PiiMasker, detect_pii, evaluate_pii
from r1tune.errors import R1TuneError

HERE = Path(__file__).parent
HARD = HERE / "pii_hard_cases.jsonl"


def names(text: str, **kw) -> list[str]:
    return [s.text for s in detect_pii(text, **kw) if s.type == "PERSON"]


@pytest.mark.parametrize(("text", "expected"), [
    ("客户林浩然说卡被吞了", ["林浩然"]),
    ("本次由闫超负责跟进", ["闫超"]),
    ("王丽于上周投诉了扣款问题", ["王丽"]),
    ("这笔贷款是欧阳宇婷在柜台办理的", ["欧阳宇婷"]),  # two-character surname, itself a place name
    ("这位客户许霞雪情绪比较激动", ["许霞雪"]),  # the cue path cut it short; the free scan extends it
    ("Spoke with Priya Raman about the late fee.", ["Priya Raman"]),  # surname table, given name unknown
    ("Agent Kelly Wu will call you back.", ["Kelly Wu"]),  # a role word is not part of the name
])
def test_names_without_cue_words(text, expected):
    assert names(text) == expected


@pytest.mark.parametrize("text", [
    "白金卡年费为1000元。", "周末两天客服照常在线。", "许多客户反映到账慢。", "提高明年的额度上限。",
    "这个方法很高明", "周大福门店可以以旧换新。", "苏宁易购的订单请联系商家。", "黄金积存金价格今日上涨1.2%。",
    "Visa Platinum cardholders get 2% cashback.", "Customer Service is open Monday to Friday.",
    # product copy and general text where a first version saw names (jieba lists these words as names too)
    "配备易清洁表面，轻轻一擦就干净。", "月白运动水壶", "从早高峰通勤到周末长距离散步", "这座著名的温泉胜地",
    "《荷马史诗》中的奥德赛", "7. 天王星（Uranus）", "长期暴露于高浓度的颗粒物污染", "枝繁叶茂",
])
def test_words_that_start_with_a_surname_are_kept(text):
    assert names(text) == []


def test_person_scope_private_keeps_public_and_fictional_names_only():
    text = "诸葛亮的故事和客户张伟的投诉都在附件里。Harry Potter fans asked James Miller for a refund."
    assert names(text) == ["诸葛亮", "张伟", "Harry Potter", "James Miller"]
    assert names(text, person_scope="private") == ["张伟", "James Miller"]
    masked, _ = PiiMasker(person_scope="private").mask(text)
    assert "诸葛亮" in masked and "张伟" not in masked and "[PERSON]" in masked


def test_hard_set_is_reproducible_large_and_half_negative():
    spec = importlib.util.spec_from_file_location("make_pii_hard_cases", HERE / "make_pii_hard_cases.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cases = [json.loads(line) for line in HARD.read_text(encoding="utf-8").splitlines()]
    assert cases == gen.positive_cases() + gen.negative_cases()  # the seeded RNG starts fresh on import
    negatives = sum(not c["spans"] for c in cases)
    assert len(cases) >= 300 and 0.45 <= negatives / len(cases) <= 0.55


def test_hard_set_meets_the_issue_floors():
    """PERSON precision and recall >= 0.95, cards >= 0.98, look-alikes kept >= 0.98 (measured: 1.00, 0.98,
    1.00 and 100%, `make bench-pii`)."""
    cases = [json.loads(line) for line in HARD.read_text(encoding="utf-8").splitlines()]
    detector = PiiDetector()
    scores = evaluate_pii(cases, detector)
    assert scores["PERSON"]["precision"] >= 0.95 and scores["PERSON"]["recall"] >= 0.95, scores["PERSON"]
    assert scores["BANK_CARD"]["precision"] >= 0.98 and scores["BANK_CARD"]["recall"] >= 0.98
    negatives = [c for c in cases if not c["spans"]]
    kept = sum(not detector.detect(c["text"]) for c in negatives) / len(negatives)
    assert kept >= 0.98
    # the cue-only finder is what the free scan improves on: most cue-less names are missed there
    assert evaluate_pii(cases, PiiDetector(names="cues"))["PERSON"]["recall"] < 0.5


def test_learned_tagger_option_finds_names_or_says_what_to_install():
    try:
        import thulac  # noqa: F401
    except ImportError:
        with pytest.raises(R1TuneError, match="pip install 'r1tune\\[names\\]'"):
            detect_pii("本次由闫超负责跟进", names="thulac")
        return
    assert names("本次由闫超负责跟进，客户林浩然已签字。", names="thulac") == ["闫超", "林浩然"]


def test_long_mixed_full_width_records_are_masked_whole():
    card = "６２２２０２ ６６９６０１７９３７８６２"  # full-width 6+13 grouping (Luhn-valid when half-width)
    unit = f"客户林浩然说卡号{card}被冻结。Spoke with Priya Raman. 订单号2026112212345678已发货。"
    text = unit * 2000  # about 150,000 characters
    spans = detect_pii(text)
    assert sum(s.type == "PERSON" for s in spans) == 4000 and sum(s.type == "BANK_CARD" for s in spans) == 2000
    masked, _ = PiiMasker().mask(text)
    assert masked.endswith("已发货。") and masked.count("[BANK_CARD]") == 2000 and "林浩然" not in masked
    assert masked.count("2026112212345678") == 2000  # the order number is kept
    assert detect_pii("没有任何个人信息，只有版本8.2.10和金额¥1,299.00。") == []
