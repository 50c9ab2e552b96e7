"""Which representation routes `model: auto` better, measured on held-out prompts worded differently from
the training prompts (tests/serve/routing_cases.json, built by make_routing_cases.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1tune.data.clean import detect_language
from r1tune.serve.router import DomainRouter

CASES = json.loads(Path(__file__).with_name("routing_cases.json").read_text(encoding="utf-8"))


def _accuracy(router: DomainRouter) -> dict[str, float]:
    right: dict[str, list[bool]] = {"zh": [], "en": []}
    for domain, prompts in CASES.items():
        for prompt in prompts["test"]:
            right[detect_language(prompt)].append(router.route(prompt).adapter == domain)
    every = right["zh"] + right["en"]
    return {"zh": sum(right["zh"]) / len(right["zh"]), "en": sum(right["en"]) / len(right["en"]),
            "all": sum(every) / len(every)}


def test_auto_routes_english_by_meaning_and_chinese_by_characters():
    pytest.importorskip("sentence_transformers", reason="the quality extra is not installed")
    train = {domain: prompts["train"] for domain, prompts in CASES.items()}
    tfidf = _accuracy(DomainRouter(train, method="tfidf"))
    embedding = _accuracy(DomainRouter(train, method="embedding"))
    auto = _accuracy(DomainRouter(train, method="auto"))
    print(f"held-out routing accuracy: tfidf {tfidf}, embedding {embedding}, auto {auto}")
    assert embedding["en"] > tfidf["en"] and tfidf["zh"] > embedding["zh"]  # each wins one language
    assert auto["en"] == embedding["en"] and auto["zh"] == tfidf["zh"] and auto["all"] > tfidf["all"]


def test_without_the_embedding_package_auto_falls_back_and_embedding_says_what_to_install(monkeypatch, caplog):
    from r1tune.data import embeddings
    from r1tune.errors import R1TuneError

    def missing(texts, batch_size=64):
        raise R1TuneError("the quality filter needs sentence-transformers", hint="pip install 'r1tune[quality]'")

    monkeypatch.setattr(embeddings, "embed", missing)
    train = {domain: prompts["train"] for domain, prompts in CASES.items()}
    with caplog.at_level("WARNING"):
        router = DomainRouter(train, method="auto")
    assert "routing by TF-IDF alone" in caplog.text
    assert router.route("My landlord broke a rental contract, can I sue?").adapter == "law"
    with pytest.raises(R1TuneError, match="needs sentence-transformers"):
        DomainRouter(train, method="embedding")


def test_embedding_centroids_use_an_even_sample_of_many_prompts():
    from r1tune.serve.router import _spread

    assert _spread([str(i) for i in range(10)], 4) == ["0", "2", "5", "7"]
    assert _spread(["a", "b"], 4) == ["a", "b"]
