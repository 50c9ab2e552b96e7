"""Readers: each record shape, the peer project's real files, and every kind of broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tune.config import SourceConfig
from r1tune.data import Quarantine, read_source
from r1tune.errors import DataError

# CI clones the repo with shared/ beside it; a developer's checkout may live elsewhere on this machine.
_PEER_CANDIDATES = [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
PEER = next((c for c in _PEER_CANDIDATES if c.is_dir()), _PEER_CANDIDATES[0]) / "peer-datasets" / "llamafactory"


def _read(path: Path, **kwargs):
    quarantine = Quarantine()
    return list(read_source(SourceConfig(path=path, **kwargs), quarantine)), quarantine


def test_messages_jsonl_with_reasoning(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A", "reasoning": "R"}]}) + "\n")
    records, quarantine = _read(path)
    assert len(records) == 1 and not quarantine
    assert records[0].answer.reasoning == "R" and records[0].source == f"{path}:1"


def test_malformed_jsonl_lines_are_quarantined_with_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})
    path.write_text("\n".join([
        good,
        '{"messages": [{"role": "user", "content": "Q"}',  # truncated JSON
        json.dumps({"messages": [{"role": "user", "content": "Q"}]}),  # no answer
        json.dumps({"messages": [{"role": "robot", "content": "Q"}, {"role": "assistant", "content": "A"}]}),
        json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": " "}]}),
        good.replace('"Q"', '"Q2"'),
    ]) + "\n")
    records, quarantine = _read(path)
    assert [r.source for r in records] == [f"{path}:1", f"{path}:6"]  # nothing accepted is lost
    reasons = {item.source: item.reason for item in quarantine.items}
    assert "invalid JSON" in reasons[f"{path}:2"]
    assert "last message must be the assistant" in reasons[f"{path}:3"]
    assert "messages[0].role is 'robot'; allowed: system, user, assistant" in reasons[f"{path}:4"]
    assert "assistant answer is empty" in reasons[f"{path}:5"]


def test_alpaca_peer_files_load_unchanged():
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json"):
        records, quarantine = _read(PEER / name)
        raw = json.loads((PEER / name).read_text(encoding="utf-8"))
        assert len(records) + len(quarantine) == len(raw) and len(records) > 0.95 * len(raw)
        first = raw[0]
        expected_prompt = first["instruction"] + (f"\n\n{first['input']}" if first.get("input") else "")
        assert records[0].messages[-2].content == expected_prompt
        assert records[0].answer.content == first["output"]


def test_csv_with_template_and_broken_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('name,price,description\nMug,12,"A mug, sturdy."\nLamp,30\nVase,5,\n"Cup",3,"Small cup"\n',
                    encoding="utf-8")
    records, quarantine = _read(path, prompt_template="Describe {{name}} ({{price}} yuan)",
                                target_column="description")
    assert [r.messages[0].content for r in records] == ["Describe Mug (12 yuan)", "Describe Cup (3 yuan)"]
    reasons = {item.source: item.reason for item in quarantine.items}
    assert "different number of fields" in reasons[f"{path}:3"]
    assert "empty answer in column 'description'" in reasons[f"{path}:4"]


def test_csv_template_naming_a_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("name,description\nMug,A mug\n")
    records, quarantine = _read(path, prompt_template="Describe {{nmae}}", target_column="description")
    assert not records and "'nmae' is undefined" in quarantine.items[0].reason
    with pytest.raises(DataError, match="target_column 'desc' is not a column"):
        _read(path, prompt_template="{{name}}", target_column="desc")
    with pytest.raises(DataError, match="needs prompt_template and target_column"):
        _read(path)


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        _read(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no records found"):
        _read(empty)
    weird = tmp_path / "weird.jsonl"
    weird.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(DataError, match="cannot tell the record format.*answer.*question"):
        _read(weird)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"instruction": "a", "output": "b"},\n{"instruction": ')
    with pytest.raises(DataError, match=r"broken.json:2: invalid JSON"):
        _read(broken)


# ---------------------------------------------------------------------------------------------------------
# more files, encodings and shapes

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_every_peer_file_loads_without_conversion():
    expected = {"alpaca_en_demo.json": 999, "alpaca_zh_demo.json": 1000, "identity.json": 91,
                "dpo_en_demo.json": 300, "dpo_zh_demo.json": 300, "reason_tool_use_demo_50.jsonl": 50}
    for name, count in expected.items():
        records, quarantine = _read(PEER / name)
        assert len(records) == count and not quarantine, (name, [i.reason for i in quarantine.items[:3]])
    pairs, _ = _read(PEER / "dataset_info.json", dataset="dpo_en_demo")
    raw = json.loads((PEER / "dpo_en_demo.json").read_text(encoding="utf-8"))
    assert pairs[0].answer.content == raw[0]["chosen"]["value"]
    assert pairs[0].meta["rejected"] == raw[0]["rejected"]["value"]
    assert pairs[0].messages[-2].content == raw[0]["conversations"][-1]["value"]


def test_tool_use_conversations_keep_reasoning_calls_and_results():
    records, _ = _read(PEER / "reason_tool_use_demo_50.jsonl")
    with_tools = next(r for r in records if any("<tool_response>" in m.content for m in r.messages))
    roles = [m.role for m in with_tools.messages]
    assert roles[:3] == ["system", "user", "assistant"] and "<tools>" in with_tools.messages[0].content
    call = with_tools.messages[2]
    assert call.content.startswith("<tool_call>\n{") and call.reasoning
    assert with_tools.messages[3].role == "user" and with_tools.messages[3].content.startswith("<tool_response>")


def test_dataset_info_errors_name_the_entry(tmp_path):
    with pytest.raises(DataError, match="say which entry"):
        _read(PEER / "dataset_info.json")
    with pytest.raises(DataError, match="no dataset 'nope'"):
        _read(PEER / "dataset_info.json", dataset="nope")
    with pytest.raises(DataError, match="lives on a hub"):
        _read(PEER / "dataset_info.json", dataset="alpaca_en")
    with pytest.raises(DataError, match="data file not found.*glaive_toolcall_en_demo.json"):
        _read(PEER / "dataset_info.json", dataset="glaive_toolcall_en_demo")


def test_sibling_dataset_info_maps_custom_columns(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "faq": {"file_name": "faq.jsonl", "columns": {"prompt": "question", "response": "answer"}},
        "chat": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "dialog"},
                 "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "customer",
                          "assistant_tag": "agent"}},
        "pt": {"file_name": "pt.jsonl", "columns": {"prompt": "body"}},
    }))
    (tmp_path / "faq.jsonl").write_text(json.dumps({"question": "Q1", "answer": "A1"}) + "\n")
    (tmp_path / "chat.json").write_text(json.dumps([{"dialog": [
        {"speaker": "customer", "text": "hi"}, {"speaker": "agent", "text": "hello"}]}]))
    (tmp_path / "pt.jsonl").write_text(json.dumps({"body": "Refunds take five days. Keep the receipt."}) + "\n")
    faq, _ = _read(tmp_path / "faq.jsonl")
    chat, _ = _read(tmp_path / "chat.json")
    pt, _ = _read(tmp_path / "pt.jsonl")
    assert [(m.role, m.content) for m in faq[0].messages] == [("user", "Q1"), ("assistant", "A1")]
    assert [(m.role, m.content) for m in chat[0].messages] == [("user", "hi"), ("assistant", "hello")]
    assert pt[0].meta["kind"] == "document" and pt[0].answer.content.startswith("Refunds take five days.")


def test_gbk_csv_is_detected_and_read(tmp_path):
    records, quarantine = _read(FIXTURES / "products_gbk.csv", prompt_template="为{{名称}}（{{材质}}，{{价格}}元）写一段描述",
                                target_column="描述")
    assert not quarantine and len(records) == 3
    assert records[0].messages[0].content == "为陶瓷杯（陶瓷，39元）写一段描述"
    assert records[0].answer.content == "这款陶瓷杯手感温润，适合办公室使用。"


def test_wrong_declared_encoding_quarantines_rows_but_keeps_the_rest(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"name,description\nMug,A mug\n" + "杯子,好杯子\n".encode("gbk") + b"Lamp,A lamp\n")
    records, quarantine = _read(path, prompt_template="{{name}}", target_column="description", encoding="utf-8")
    assert [r.answer.content for r in records] == ["A mug", "A lamp"]
    assert quarantine.items[0].source == f"{path}:3" and "do not decode" in quarantine.items[0].reason
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        _read(path, prompt_template="{{name}}", target_column="description", encoding="klingon")


def test_utf8_bom_tsv_header_is_clean():
    records, quarantine = _read(FIXTURES / "products_bom.tsv", prompt_template="Describe {{name}}",
                                target_column="description")
    assert [r.messages[0].content for r in records] == ["Describe Mug", "Describe Scarf"] and not quarantine


def test_xlsx_and_parquet_tables(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "products"
    for row in (["name", "price", "description"], ["Mug", 12, "A mug."], [None, None, None], ["Vase", 5.0, None]):
        sheet.append(row)
    book.save(tmp_path / "p.xlsx")
    records, quarantine = _read(tmp_path / "p.xlsx", prompt_template="{{name}} costs {{price}}",
                                target_column="description")
    assert [r.messages[0].content for r in records] == ["Mug costs 12"]
    assert quarantine.items[0].source == f"{tmp_path / 'p.xlsx'}:products!4"
    assert "empty answer in column 'description'" in quarantine.items[0].reason
    with pytest.raises(DataError, match="no worksheet 'other'"):
        _read(tmp_path / "p.xlsx", prompt_template="{{name}}", target_column="description", sheet="other")
    pq.write_table(pa.table({"instruction": ["Say hi", "Say bye"], "input": ["", ""], "output": ["hi", ""]}),
                   tmp_path / "a.parquet")
    records, quarantine = _read(tmp_path / "a.parquet")
    assert [r.answer.content for r in records] == ["hi"]
    assert quarantine.items[0].source == f"{tmp_path / 'a.parquet'}:#1" and "answer is empty" in quarantine.items[0].reason


def test_broken_binary_files_raise_errors_naming_the_file(tmp_path):
    for name in ("bad.xlsx", "bad.parquet", "bad.pdf", "bad.docx"):
        (tmp_path / name).write_bytes(b"this is not really a " + name.encode())
        with pytest.raises(DataError, match=f"{name}: not a readable"):
            _read(tmp_path / name, prompt_template="{{a}}", target_column="b")


def test_empty_files_of_every_kind_are_errors(tmp_path):
    for name in ("e.csv", "e.jsonl", "e.json", "e.txt", "e.md"):
        (tmp_path / name).write_text("")
        with pytest.raises(DataError, match="no records found"):
            _read(tmp_path / name, prompt_template="{{a}}", target_column="b")
    (tmp_path / "blank.md").write_text("\n\n   \n")
    with pytest.raises(DataError, match="no text found"):
        _read(tmp_path / "blank.md")
    (tmp_path / "header_only.csv").write_text("name,description\n")
    with pytest.raises(DataError, match="no records found"):
        _read(tmp_path / "header_only.csv", prompt_template="{{name}}", target_column="description")


def test_sharegpt_preference_dialogue_and_label_studio_shapes(tmp_path):
    sharegpt = tmp_path / "s.json"
    sharegpt.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}], "system": "S"},
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "robot", "value": "A"}]},
    ]))
    records, quarantine = _read(sharegpt)
    assert [(m.role, m.content) for m in records[0].messages] == [("system", "S"), ("user", "Q"), ("assistant", "A")]
    assert "'robot'" in quarantine.items[0].reason and quarantine.items[0].source == f"{sharegpt}:#1"

    pref = tmp_path / "p.jsonl"
    pref.write_text(json.dumps({"prompt": "Which is better?", "chosen": "A", "rejected": "B"}) + "\n"
                    + json.dumps({"prompt": "Q", "chosen": "A"}) + "\n")
    records, quarantine = _read(pref, format="preference")
    assert records[0].answer.content == "A" and records[0].meta["rejected"] == "B"
    assert "preference field `rejected` is missing" in quarantine.items[0].reason

    records, _ = _read(FIXTURES / "dialogue.jsonl")
    assert len(records) == 3  # two turns from the triple, one from the pair
    first, second = records[0], records[1]
    assert [(m.role, m.content) for m in first.messages] == [("user", "你好，杯子有蓝色的吗？"),
                                                             ("assistant", "有的，蓝色现货。")]
    # the followup answers the response; the context before it stays as history
    assert [(m.role, m.content) for m in second.messages] == [("user", "有的，蓝色现货。"),
                                                              ("assistant", "那我要两个。")]
    assert second.source.endswith(":1#2")

    records, quarantine = _read(FIXTURES / "label_studio.json", label_column="intent")
    assert [(r.messages[0].content, r.answer.content, r.meta["intent"]) for r in records] == [
        ("我想退货，怎么操作？", "请在订单页点击申请退货。", "退货"), ("Where is my parcel?", "Check the tracking page.", "shipping")]
    assert "no (uncancelled) annotation" in quarantine.items[0].reason
    records, _ = _read(FIXTURES / "label_studio.json", target_column="intent", prompt_template="Intent of: {{text}}")
    assert records[0].messages[0].content == "Intent of: 我想退货，怎么操作？" and records[0].answer.content == "退货"


def test_documents_become_chunks_with_headings_and_locations():
    pdf, _ = _read(FIXTURES / "policy.pdf")
    assert [r.meta["heading"] for r in pdf] == ["Returns policy", "Shipping"]
    assert pdf[0].messages[0].content == "Shop policy: Returns policy"
    assert pdf[0].answer.content.startswith("Returns policy\nCustomers may return")
    assert pdf[0].source.endswith("policy.pdf:p1")
    docx_records, _ = _read(FIXTURES / "manual.docx")
    assert docx_records[0].messages[0].content == "售后服务手册: 退货政策"
    assert "台灯 | 12个月" in docx_records[-1].answer.content


def test_html_and_markdown_documents(tmp_path):
    page = tmp_path / "faq.html"
    page.write_text("<html><head><title>FAQ</title><script>var x = 1;</script></head><body>"
                    "<h1>Delivery</h1><p>We ship <b>fast</b>.<br>Usually in 2 days.</p>"
                    "<h2>Fees</h2><ul><li>Standard: free</li><li>Express: 15 yuan</li></ul></body></html>")
    records, _ = _read(page)
    text = "\n".join(r.answer.content for r in records)
    assert "var x" not in text and "We ship fast.\nUsually in 2 days." in text and "Express: 15 yuan" in text
    assert records[0].messages[0].content.startswith("FAQ: ")
    notes = tmp_path / "notes.md"
    notes.write_text("# 退货\n\n七天无理由退货。\n\n```\n# not a heading\n```\n\n第二章 保修\n\n保修一年。\n")
    records, _ = _read(notes)
    assert [r.meta["heading"] for r in records] == ["退货"]  # the tiny sections merge into one chunk
    assert "# not a heading" in records[0].answer.content and "第二章 保修" in records[0].answer.content
