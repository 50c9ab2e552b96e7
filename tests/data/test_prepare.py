"""prepare: deterministic splits, held-out test files, duplicates, and nothing-usable errors."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from helpers import product_records, write_messages_jsonl

from r1tune.config import DataConfig, SourceConfig
from r1tune.data import load_prepared, prepare, split_records
from r1tune.errors import DataError


def test_split_is_deterministic_and_order_independent():
    records = product_records(50)
    a = split_records(records, 0.1, 0.1, seed=7)
    b = split_records(list(reversed(records)), 0.1, 0.1, seed=7)
    assert [[r.id for r in part] for part in a] == [[r.id for r in part] for part in b]
    assert [len(part) for part in a] == [40, 5, 5]
    c = split_records(records, 0.1, 0.1, seed=8)
    assert [r.id for r in c[2]] != [r.id for r in a[2]]


def test_prepare_writes_splits_report_and_quarantine(tmp_path):
    path = write_messages_jsonl(tmp_path / "d.jsonl", product_records(20) + product_records(3))  # 3 duplicates
    with path.open("a") as fh:
        fh.write("{not json\n")
    data = prepare(DataConfig(sources=[SourceConfig(path=path)]), tmp_path / "out", seed=1)
    funnel = data.report.funnel.model_dump()
    assert funnel["read"] == 24 and funnel["usable"] == 20 and funnel["rejected"] == {"read": 1, "dedup": 3}
    assert funnel["train"] + funnel["val"] + funnel["test"] == 20
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert any(q["stage"] == "dedup" and "exact duplicate of" in q["reason"] for q in quarantined)
    reloaded = load_prepared(tmp_path / "out")
    assert [r.id for r in reloaded.test] == [r.id for r in data.test]
    assert len(data.report.sources[str(path)]["sha256"]) == 64


def test_held_out_test_file_replaces_the_test_split_and_leaks_are_removed(tmp_path):
    train_path = write_messages_jsonl(tmp_path / "train.jsonl", product_records(20))
    test_path = write_messages_jsonl(tmp_path / "test.jsonl", product_records(25)[18:])  # 2 overlap
    cfg = DataConfig(sources=[SourceConfig(path=train_path)], test_sources=[SourceConfig(path=test_path)])
    data = prepare(cfg, tmp_path / "out", seed=1)
    assert len(data.test) == 5 and len(data.train) + len(data.val) == 20
    assert data.report.funnel.rejected == {"dedup": 2}


def test_nothing_usable_is_an_error_with_examples(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": []}\n')
    with pytest.raises(DataError, match=r"no usable records .*d.jsonl:1: `messages` must be a non-empty list"):
        prepare(DataConfig(sources=[SourceConfig(path=path)]), tmp_path / "out", seed=1)
    filtered = tmp_path / "f.jsonl"
    filtered.write_text(json.dumps({"instruction": "Q", "output": "哈" * 80}) + "\n")
    with pytest.raises(DataError, match=r"no usable records .*f.jsonl:1: repetitive text"):
        prepare(DataConfig(sources=[SourceConfig(path=filtered)]), tmp_path / "out2", seed=1)
    assert "repetitive text" in (tmp_path / "out2" / "quarantine.jsonl").read_text()


# ---------------------------------------------------------------------------------------------------------
# the full engine: cleaning notes, PII, near-duplicate clusters, strata, report


def _rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _alpaca(i, answer, label=None):
    row = {"instruction": f"问题{i}：这个商品怎么样？", "input": "", "output": answer}
    if label is not None:
        row["label"] = label
    return row


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


LONG = "这款陶瓷杯采用高温烧制工艺，杯壁厚实不易烫手，容量三百五十毫升，适合办公室和家庭日常使用，清洗方便。"


def test_every_changed_or_dropped_row_is_traced_and_counted(tmp_path):
    path = _rows(tmp_path / "d.jsonl", [
        _alpaca(0, "<p>第一款&nbsp;产品很好</p>"),  # changed: html
        _alpaca(1, "联系电话13812345678，随时咨询。"),  # changed: pii
        _alpaca(2, "好"),  # kept
        _alpaca(3, "买它" * 40),  # rejected: repetition
        _alpaca(0, "<p>第一款&nbsp;产品很好</p>"),  # exact duplicate of line 1
        _alpaca(5, LONG), _alpaca(5, LONG.replace("清洗方便", "清洗很方便")),  # near duplicates (same question)
    ] + [_alpaca(10 + i, f"普通回答第{i}条，内容各不相同：{'甲乙丙丁戊己庚辛'[i % 8] * (i + 1)}") for i in range(8)])
    data = prepare(DataConfig(sources=[SourceConfig(path=path)]), tmp_path / "out", seed=1)
    report = data.report.model_dump()  # the typed report, compared section by section below
    assert report["funnel"]["rejected"] == {"filter": 1, "dedup": 1, "near_dedup": 1}
    assert report["funnel"]["changed"] == {"clean": 2, "pii": 1}
    assert report["funnel"]["usable"] == 12 == sum(report["funnel"][s] for s in ("train", "val", "test"))
    quarantine = {(q["source"].split(":")[-1], q["stage"]): q for q in _lines(tmp_path / "out" / "quarantine.jsonl")}
    assert quarantine[("1", "clean")]["reason"] == "changed by html_to_text"
    assert quarantine[("2", "pii")]["reason"] == "masked PHONE×1" and quarantine[("2", "pii")]["action"] == "changed"
    assert quarantine[("4", "filter")]["reason"].startswith("repetitive text") and quarantine[("4", "filter")]["row"]
    assert quarantine[("5", "dedup")]["reason"] == f"exact duplicate of {path}:1"
    assert quarantine[("7", "near_dedup")]["reason"].startswith(f"near duplicate of {path}:6 (similarity 0.")
    kept = [r for split in (data.train, data.val, data.test) for r in split]
    assert any(r.answer.content == "联系电话[PHONE]，随时咨询。" for r in kept)
    assert any(r.answer.content == "第一款 产品很好" for r in kept)
    assert report["pii"]["by_type"] == {"PHONE": 1} and report["pii"]["records_masked"] == 1
    assert report["duplicates"]["exact"] == 1 and report["duplicates"]["near"] == 1
    assert report["duplicates"]["largest_clusters"][0]["kept"] == f"{path}:6"
    assert sum(report["histograms"]["answer_chars"]["counts"]) == 12
    assert report["languages"] == {"zh": 12}
    assert [s["stage"] for s in report["stages"]] == ["read", "clean", "filter", "pii", "placeholders", "dedup",
                                                      "near_dedup", "quality", "balance", "split"]


def test_near_duplicate_clusters_never_straddle_splits(tmp_path):
    rows, rng = [], random.Random(0)
    for cluster in range(30):
        text = "".join(rng.choice("天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏") for _ in range(150))
        for variant in range(3):  # paraphrase-like variants: one character differs
            rows.append(_alpaca(cluster, f"第{cluster}号商品说明：{text[:75]}{'甲乙丙'[variant]}{text[76:]}"))
    path = _rows(tmp_path / "d.jsonl", rows)
    cfg = DataConfig(sources=[SourceConfig(path=path)], clean={"near_dup_action": "keep"}, test_ratio=0.2)
    data = prepare(cfg, tmp_path / "out", seed=3)
    where = {}
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        for record in split:
            cluster = record.answer.content.split("号")[0]
            where.setdefault(cluster, set()).add(name)
    assert len(where) == 30 and all(len(splits) == 1 for splits in where.values())
    assert data.report.duplicates["clusters"] == 30 and data.report.duplicates["near"] == 0
    assert len(data.test) == 18 and len(data.val) == 9  # whole clusters of 3: round(90 * ratio)


def test_stratified_split_with_cap_and_upsampling(tmp_path):
    rows = [_alpaca(i, f"退货相关回答{i}号，请按流程办理。", "refund") for i in range(60)]
    rows += [_alpaca(100 + i, f"物流相关回答{i}号，包裹正在路上。", "shipping") for i in range(20)]
    rows += [_alpaca(200 + i, f"发票相关回答{i}号，可在订单页申请。", "invoice") for i in range(5)]
    path = _rows(tmp_path / "d.jsonl", rows)
    cfg = DataConfig(sources=[SourceConfig(path=path)], split={"stratify_by": "label", "max_per_class": 40,
                                                               "min_per_class": 30})
    data = prepare(cfg, tmp_path / "out", seed=5)
    strata = data.report.split["strata"]
    # 65 records after the cap: 6 test and 6 val; each class gets one, the rest goes by class size
    assert {k: (v["val"], v["test"]) for k, v in strata.items()} == {"refund": (3, 3), "shipping": (2, 2),
                                                                     "invoice": (1, 1)}
    assert {k: v["train"] for k, v in strata.items()} == {"refund": 34, "shipping": 30, "invoice": 30}
    assert data.report.split["capped"] == 20 and data.report.funnel.rejected == {"balance": 20}
    assert data.report.split["upsampled"] == 14 + 27
    train_labels = Counter(r.meta["label"] for r in data.train)
    assert train_labels == {"refund": 34, "shipping": 30, "invoice": 30}
    assert len({r.id for r in data.train if r.meta["label"] == "invoice"}) == 3  # 3 originals, repeated
    again = prepare(cfg, tmp_path / "again", seed=5)
    assert [r.id for r in again.test] == [r.id for r in data.test]
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (tmp_path / "out" / "train.jsonl").read_bytes()


def test_held_out_near_duplicates_of_training_data_are_removed(tmp_path):
    train = _rows(tmp_path / "train.jsonl", [_alpaca(i, f"{LONG}第{i}版。") for i in range(5)] +
                  [_alpaca(10 + i, f"完全不同的回答，编号{i}，讲的是物流。") for i in range(10)])
    test = _rows(tmp_path / "test.jsonl", [_alpaca(0, f"{LONG}第0版本。"), _alpaca(99, "全新的测试问题的答案，与训练无关。")])
    cfg = DataConfig(sources=[SourceConfig(path=train)], test_sources=[SourceConfig(path=test)],
                     clean={"near_dup_action": "keep"})
    data = prepare(cfg, tmp_path / "out", seed=1)
    assert [r.answer.content for r in data.test] == ["全新的测试问题的答案，与训练无关。"]
    leak = [q for q in _lines(tmp_path / "out" / "quarantine.jsonl") if q["stage"] == "near_dedup"]
    assert leak[0]["source"] == f"{test}:1" and "near-duplicates training record" in leak[0]["reason"]
    assert "1 held-out test record(s) near-duplicated training records and were removed from the test split " \
           "(see quarantine.jsonl)" in data.report.warnings


def test_parallel_workers_give_the_same_output(tmp_path):
    rows = [_alpaca(i, f"回答{i}：联系13812345{i:03d}，" + "甲乙丙丁"[i % 4] * (i % 7 + 1)) for i in range(120)]
    path = _rows(tmp_path / "d.jsonl", rows + rows[:10])
    outputs = []
    for num_proc in (1, 2):
        cfg = DataConfig(sources=[SourceConfig(path=path)], num_proc=num_proc)
        data = prepare(cfg, tmp_path / f"out{num_proc}", seed=2)
        outputs.append([(tmp_path / f"out{num_proc}" / f"{s}.jsonl").read_bytes() for s in ("train", "val", "test")])
        assert data.report.num_proc == num_proc and data.report.funnel.rejected == {"dedup": 10}
    assert outputs[0] == outputs[1]
    assert (tmp_path / "out1" / "quarantine.jsonl").read_bytes() == (tmp_path / "out2" / "quarantine.jsonl").read_bytes()


def test_documents_are_chunked_with_the_given_tokenizer(tmp_path, smol_tokenizer):
    doc = tmp_path / "manual.md"
    doc.write_text("# 退货\n\n" + "".join(f"第{i}款：商品签收后{i + 1}天内可以申请退货，请保持包装完好并附上发票。"
                                          for i in range(30)) + "\n\n# 保修\n\n保修一年。\n")
    cfg = DataConfig(sources=[SourceConfig(path=doc)], chunking={"max_tokens": 128, "overlap_tokens": 32},
                     val_ratio=0.0, test_ratio=0.0)
    data = prepare(cfg, tmp_path / "out", seed=1, tokenizer=smol_tokenizer)
    assert data.report.token_counter == "tokenizer" and len(data.train) > 5
    assert all(len(smol_tokenizer(r.answer.content)["input_ids"]) <= 130 for r in data.train)
    assert all(r.meta["kind"] == "document" and r.messages[0].content.startswith("manual: ") for r in data.train)


def test_config_errors_surface_before_any_work(tmp_path):
    path = _rows(tmp_path / "d.jsonl", [_alpaca(0, "答案")])
    with pytest.raises(Exception, match="regex_remove"):
        prepare(DataConfig(sources=[SourceConfig(path=path)], clean={"regex_remove": ["(["]}), tmp_path / "o", 1)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        DataConfig(sources=[SourceConfig(path=path)], clean={"steps": ["nfkc", "spellcheck"]})
    with pytest.raises(ValidationError):
        DataConfig(sources=[SourceConfig(path=path)], pii={"types": ["PHONE", "SHOE_SIZE"]})


def test_config_pii_types_match_the_detector():
    from typing import get_args

    from r1tune.config import PiiType
    from r1tune.data.pii import PII_TYPES

    assert set(get_args(PiiType)) == set(PII_TYPES)
