"""Document chunking: token budget with the real tokenizer, sentence-end cuts (incl. 。！？；), overlap, headings."""

from __future__ import annotations

from r1tune.data.chunking import approx_tokens, chunk_document, split_sentences, tokenizer_counter
from r1tune.data.documents import text_document


def test_sentences_end_at_chinese_and_western_punctuation():
    assert split_sentences("第一句。第二句！第三句？第四句；尾巴") == ["第一句。", "第二句！", "第三句？", "第四句；", "尾巴"]
    assert split_sentences("Pi is 3.14. Next one! “好。”他说。") == ["Pi is 3.14. ", "Next one! ", "“好。”", "他说。"]
    text = "A. B? C"
    assert "".join(split_sentences(text)) == text


def test_chunks_fit_the_budget_cut_at_sentence_ends_and_overlap(smol_tokenizer):
    count = tokenizer_counter(smol_tokenizer)
    sentences = [f"第{i}条规定：退货需在七天内完成，并保持包装完好。" for i in range(40)]
    doc = text_document("# 退货规则\n\n" + "".join(sentences), "rules.md", "rules")
    chunks = chunk_document(doc, count, max_tokens=200, overlap_tokens=60, min_tokens=8)
    assert len(chunks) > 3
    for chunk in chunks:
        assert count(chunk.text) <= 200 + 2  # sentence sums vs whole-text BPE may differ by a merge or two
        assert chunk.text.endswith("。") and chunk.heading == "退货规则"
    assert chunks[0].text.startswith("退货规则\n第0条")  # the heading line opens its first chunk
    for previous, current in zip(chunks, chunks[1:], strict=False):
        last_sentence = split_sentences(previous.text)[-1]
        assert current.text.startswith(last_sentence)  # overlap of whole sentences
    covered = "".join(chunks[0].text.split("\n", 1)[1:]) + "".join(c.text for c in chunks[1:])
    assert all(s in covered for s in sentences)  # nothing lost


def test_headings_stay_with_their_sections_and_tiny_sections_merge():
    text = "# Guide\n\nIntro line.\n\n## Returns\n\n" + "Return items within thirty days of delivery. " * 30 + \
           "\n\n## Fees\n\nFree.\n\n## Warranty\n\n" + "Electronics have a one year warranty period. " * 30
    doc = text_document(text, "g.md", "g")
    chunks = chunk_document(doc, approx_tokens, max_tokens=100, overlap_tokens=0, min_tokens=8)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Guide > Returns"  # "Guide / Intro line." is too small and merged forward
    assert chunks[0].text.startswith("Guide\nIntro line.\nReturns\nReturn items")
    assert "Guide > Warranty" in headings
    fees = [c for c in chunks if "Free." in c.text]
    assert len(fees) == 1 and fees[0].heading == "Guide > Warranty" and fees[0].text.startswith("Fees\nFree.")
    for chunk in chunks:
        assert approx_tokens(chunk.text) <= 100


def test_a_sentence_longer_than_the_budget_is_cut_inside():
    doc = text_document("无标点的超长句子" * 200, "long.txt", "long")
    chunks = chunk_document(doc, approx_tokens, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 10 and all(approx_tokens(c.text) <= 64 for c in chunks)
    assert "".join(c.text for c in chunks).count("无标点的超长句子") >= 199
