"""Exact and near-duplicate detection: datasketch-identical signatures, clusters, recall on planted pairs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash

from r1tune.data.dedup import MinHasher, exact_key, lsh_params, near_duplicate_clusters

ZH = "这款陶瓷杯采用优质材料容量适合办公室使用颜色为蓝色价格实惠欢迎选购我们的产品质量可靠售后服务完善"
EN = "the quick brown fox jumps over lazy dog while a blue ceramic mug holds hot coffee for office use".split()


def test_signatures_equal_datasketch_minhash():
    hasher = MinHasher(num_perm=64)
    lists = [hasher.shingle_hashes("这款陶瓷杯适合办公室使用，容量三百五十毫升。", "zh"),
             hasher.shingle_hashes("A sturdy blue mug for the office, holds 350 ml.", "en"),
             np.empty(0, dtype=np.uint32)]
    signatures = hasher.signatures(lists, block=8)  # tiny blocks: exercises the block boundaries
    for hashes, signature in zip(lists[:2], signatures[:2], strict=True):
        reference = MinHash(num_perm=64, hashfunc=lambda v: v)
        reference.update_batch([int(v) for v in hashes])
        assert np.array_equal(reference.hashvalues, signature)
    assert np.all(signatures[2] == np.iinfo(np.uint32).max)


def test_shingles_are_char_grams_for_chinese_and_word_grams_otherwise():
    hasher = MinHasher(char_shingle=5, word_shingle=3)
    assert len(set(hasher.shingle_hashes("一二三四五六七", "zh").tolist())) == 3
    assert len(hasher.shingle_hashes("one two three four", "en")) == 2
    assert len(hasher.shingle_hashes("One, two!", "en")) == 1  # shorter than k: one shingle of all


def test_exact_key_ignores_case_spacing_and_punctuation():
    assert exact_key("Hello, World!") == exact_key("hello world") != exact_key("hello worlds")
    assert exact_key("你好，世界。") == exact_key("你好世界")


def test_near_duplicate_clusters_find_planted_edits_and_nothing_else():
    rng = random.Random(3)
    base = ["".join(rng.choice(ZH) for _ in range(150)) for _ in range(300)]
    base += [" ".join(rng.choice(EN) for _ in range(60)) for _ in range(300)]
    planted = []
    for i in range(0, 600, 6):  # one small edit: a character / a word replaced
        text = base[i]
        edited = text[:70] + "好" + text[71:] if i < 300 else text.replace(text.split()[30], "teapot", 1)
        planted.append((i, len(base)))
        base.append(edited)
    hasher = MinHasher()
    langs = ["zh"] * 300 + ["en"] * 300 + ["zh" if i < 300 else "en" for i, _ in planted]
    signatures = hasher.signatures([hasher.shingle_hashes(t, lang) for t, lang in zip(base, langs, strict=True)])
    result = near_duplicate_clusters(signatures, threshold=0.8)
    found = sum(result.cluster[copy] == original for original, copy in planted)
    assert found / len(planted) >= 0.95
    planted_rows = {copy for _, copy in planted}
    false = [r for r in range(len(base)) if result.cluster[r] != r and r not in planted_rows]
    assert not false
    assert result.verified_pairs <= result.candidate_pairs
    assert all(result.similarity[copy] >= 0.8 for original, copy in planted if result.cluster[copy] == original)


def test_inactive_rows_never_join_a_cluster_and_bands_follow_datasketch():
    hasher = MinHasher()
    text = "一样的文本内容出现了三次，用来测试聚类的行为是否正确。"
    signatures = hasher.signatures([hasher.shingle_hashes(text, "zh")] * 3)
    result = near_duplicate_clusters(signatures, 0.8, active=np.array([True, False, True]))
    assert result.cluster.tolist() == [0, 1, 0]
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128 and bands > 1


def test_clusters_do_not_chain_through_neighbours():
    # A ~ B and B ~ C at 0.85, A ~ C at 0.70: with threshold 0.8, C is not a duplicate of A's cluster.
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32 - 1, 100, dtype=np.uint32)
    b, c = a.copy(), a.copy()
    b[:15] += 1
    c[:15] += 1
    c[15:30] += 1
    result = near_duplicate_clusters(np.stack([a, b, c]), 0.8)
    assert result.cluster.tolist() == [0, 0, 2]
    assert result.similarity.tolist() == pytest.approx([1.0, 0.85, 1.0])


def test_a_second_signature_must_agree_too():
    # same answers (second matrix equal), prompts 0.5 similar: not duplicates; prompts equal: duplicates
    rng = np.random.default_rng(1)
    answer = rng.integers(0, 2**32 - 1, (2, 64), dtype=np.uint32)
    answer[1] = answer[0]
    prompt = rng.integers(0, 2**32 - 1, (2, 64), dtype=np.uint32)
    prompt[1, :32] = prompt[0, :32]
    assert near_duplicate_clusters(prompt, 0.8, also=answer).cluster.tolist() == [0, 1]
    prompt[1] = prompt[0]
    assert near_duplicate_clusters(prompt, 0.8, also=answer).cluster.tolist() == [0, 0]
