"""Text metrics for tuned models, correct for Chinese as well as English.

Pure functions over strings (no model, no torch) so a report can be recomputed from saved predictions.
* rouge-score's default tokenizer keeps only ``[a-z0-9]``, so Chinese scores 0: ROUGE is computed here
  over :func:`tokenize_for_rouge` tokens (one token per CJK character, words otherwise).
* sacrebleu's default ``13a`` sees a Chinese sentence as one "word" (BLEU ~0): Chinese uses ``tokenize="zh"``.
Scales: single-pair ROUGE/F1/EM return 0-1, sacrebleu BLEU/chrF 0-100, :func:`score_all` all 0-100.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from r1tune.errors import R1TuneError

Script = Literal["zh", "en"]
_PER_EXAMPLE_KEYS = ("rouge1", "rouge2", "rougeL", "bleu", "token_f1", "exact_match")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)
# Han ideographs (unified, extensions A-H, compatibility) and Japanese kana: written without spaces,
# so each character is one token.
_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))


class MetricInputError(R1TuneError, ValueError):
    """Unscorable inputs (mismatched lengths, empty references). R1TuneError: no traceback in the CLI."""


@lru_cache(maxsize=65536)  # called per character of every text; the alphabet in use is small
def _is_cjk(ch: str) -> bool:
    """A CJK *letter*: the ranges also hold punctuation such as the katakana middle dot, which is not."""
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES) and unicodedata.category(ch)[0] == "L"


@lru_cache(maxsize=65536)
def _is_word_char(ch: str) -> bool:
    """Letters, digits and combining marks of space-delimited scripts (marks keep e.g. Hindi words whole)."""
    return unicodedata.category(ch)[0] in "LNM" and not _is_cjk(ch)


def tokenize_for_rouge(text: str) -> list[str]:
    """Each CJK character alone, other runs of letters/digits as casefolded words, in text order.
    NFKC first (``ＡＰＩ１`` is ``api1``); punctuation and spaces are dropped: "用API接口" -> 用 api 接 口."""
    tokens: list[str] = []
    word: list[str] = []
    for ch in unicodedata.normalize("NFKC", text).casefold():
        if _is_word_char(ch):
            word.append(ch)
            continue
        if word:
            tokens.append("".join(word))
            word = []
        if _is_cjk(ch):
            tokens.append(ch)
    if word:
        tokens.append("".join(word))
    return tokens


def script_of(text: str) -> Script:
    """``"zh"`` if the text has CJK characters and at least as many of them as other-script words.

    Counted in :func:`tokenize_for_rouge` tokens, digit-only tokens ignored: one Chinese character carries
    about one English word, so ``"请调用API"`` is zh (3 vs 1). Ties go to zh (its BLEU tokenizer is 13a
    on Latin text).
    """
    tokens = tokenize_for_rouge(text)
    cjk = sum(1 for t in tokens if _is_cjk(t[0]))
    words = sum(1 for t in tokens if not _is_cjk(t[0]) and not t.isdigit())
    return "zh" if cjk and cjk >= words else "en"


def _require_ref(pred: str, ref: str) -> None:
    if not isinstance(pred, str):
        raise MetricInputError(f"prediction must be a string, got {type(pred).__name__}")
    if not isinstance(ref, str) or not ref.strip():
        raise MetricInputError("reference is empty; every example needs a reference to score against")


def _check_pairs(preds: Sequence[str], refs: Sequence[str]) -> None:
    """Validate a corpus once, naming every offending index so a user can fix the data file."""
    if isinstance(preds, str) or isinstance(refs, str):
        raise MetricInputError("corpus metrics take lists of strings, got a single string")
    if len(preds) != len(refs):
        raise MetricInputError(f"got {len(preds)} predictions but {len(refs)} references; they must pair up")
    if not refs:
        raise MetricInputError("no examples to score (0 predictions and 0 references)")
    bad_preds = [i for i, p in enumerate(preds) if not isinstance(p, str)]
    if bad_preds:
        raise MetricInputError(f"predictions at index {bad_preds[:10]} are not strings")
    empty = [i for i, r in enumerate(refs) if not isinstance(r, str) or not r.strip()]
    if empty:
        raise MetricInputError(f"empty reference at example index {empty[:10]} (of {len(refs)})")


def _prf(overlap: int, n_pred: int, n_ref: int) -> dict[str, float]:
    p = overlap / n_pred if n_pred else 0.0
    r = overlap / n_ref if n_ref else 0.0
    return {"p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(pred: str, ref: str, n: int) -> dict[str, float]:
    """ROUGE-N p/r/F1 with clipped n-gram counts over :func:`tokenize_for_rouge` tokens.
    Implemented here, not with rouge-score, because its default tokenizer drops CJK characters."""
    if n < 1:
        raise MetricInputError(f"ROUGE-N needs n >= 1, got {n}")
    _require_ref(pred, ref)
    p_grams, r_grams = _ngrams(tokenize_for_rouge(pred), n), _ngrams(tokenize_for_rouge(ref), n)
    overlap = sum((p_grams & r_grams).values())
    return _prf(overlap, sum(p_grams.values()), sum(r_grams.values()))


def _lcs_length(a: list[str], b: list[str]) -> int:
    """LCS length, bit-parallel (Crochemore et al. 2001): bit j of ``v`` clears once b[j] joins the LCS.
    One big-int step per token of ``a``: a Python DP table took ~10 ms per 300-character pair."""
    masks: dict[str, int] = {}
    for j, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l(pred: str, ref: str) -> dict[str, float]:
    """ROUGE-L: p = LCS/len(pred), r = LCS/len(ref), F1 (beta=1, as rouge-score) over our tokens."""
    _require_ref(pred, ref)
    p_tok, r_tok = tokenize_for_rouge(pred), tokenize_for_rouge(ref)
    return _prf(_lcs_length(p_tok, r_tok), len(p_tok), len(r_tok))


def _corpus_bleu(preds: list[str], refs: list[str], tokenize: str) -> tuple[float, str]:
    metric = BLEU(tokenize=tokenize)
    return metric.corpus_score(preds, [refs]).score, metric.get_signature().format()


def bleu(preds: list[str], refs: list[str]) -> dict[str, Any]:
    """Corpus BLEU (sacrebleu). All references English -> ``13a``; any Chinese-dominant reference -> ``zh``,
    which splits CJK characters and equals 13a on other text, so it is safe for mixed corpora.
    ``by_script`` also scores each script group alone (zh with ``zh``, en with ``13a``): one corpus number
    hides a model that is good in one language and bad in the other."""
    _check_pairs(preds, refs)
    groups: dict[str, list[int]] = {"zh": [], "en": []}
    for i, ref in enumerate(refs):
        groups[script_of(ref)].append(i)
    tokenize = "zh" if groups["zh"] else "13a"
    score, signature = _corpus_bleu(list(preds), list(refs), tokenize)
    by_script: dict[str, dict[str, Any]] = {}
    for script, idx in groups.items():
        if idx:
            tok = "zh" if script == "zh" else "13a"
            g_score, g_sig = _corpus_bleu([preds[i] for i in idx], [refs[i] for i in idx], tok)
            by_script[script] = {"score": g_score, "n": len(idx), "signature": g_sig}
    return {"score": score, "tokenize": tokenize, "signature": signature, "by_script": by_script}


def sentence_bleu(pred: str, ref: str) -> float:
    """Per-example BLEU (0-100) with effective order, so short answers are not zeroed by missing 4-grams."""
    _require_ref(pred, ref)
    metric = BLEU(tokenize="zh" if script_of(ref) == "zh" else "13a", effective_order=True)
    return metric.sentence_score(pred, [ref]).score


def chrf(preds: list[str], refs: list[str]) -> float:
    """Corpus chrF (0-100): character n-grams, so it needs no word segmentation for Chinese."""
    _check_pairs(preds, refs)
    return CHRF().corpus_score(list(preds), [list(refs)]).score


def _normalize_answer(text: str) -> str:
    """NFKC (full-width -> ASCII), casefold, drop all Unicode punctuation (，。！“” too) and whitespace."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] != "P")


def exact_match(pred: str, ref: str) -> float:
    """1.0 if equal after :func:`_normalize_answer`, else 0.0. English articles are kept (unlike SQuAD)."""
    _require_ref(pred, ref)
    return float(_normalize_answer(pred) == _normalize_answer(ref))


def token_f1(pred: str, ref: str) -> float:
    """SQuAD-style bag-of-tokens F1 (0-1) over :func:`tokenize_for_rouge` tokens (characters for Chinese)."""
    _require_ref(pred, ref)
    p_tok, r_tok = tokenize_for_rouge(pred), tokenize_for_rouge(ref)
    if not p_tok or not r_tok:
        return float(p_tok == r_tok)
    overlap = sum((Counter(p_tok) & Counter(r_tok)).values())
    return _prf(overlap, len(p_tok), len(r_tok))["f"]


def _schema_error(schema: Any, instance: Any) -> tuple[bool, str]:
    """Validate with the draft the schema declares (default 2020-12); schema problems never raise."""
    from jsonschema import SchemaError
    from jsonschema.exceptions import best_match
    from jsonschema.validators import Draft202012Validator, validator_for
    from referencing.exceptions import Unresolvable

    if not isinstance(schema, (dict, bool)):
        return False, f"schema invalid: expected a JSON object, got {type(schema).__name__}"
    try:
        cls = validator_for(schema, default=Draft202012Validator)
        cls.check_schema(schema)
        error = best_match(cls(schema).iter_errors(instance))
    except SchemaError as exc:
        return False, f"schema invalid: {exc.message}"
    except Unresolvable as exc:
        return False, f"schema invalid: unresolvable $ref ({exc})"
    except Exception as exc:  # e.g. a self-referencing $ref recursing forever: a schema fault, never a crash
        return False, f"schema invalid: cannot be applied ({type(exc).__name__}: {exc})"
    if error is None:
        return True, "ok"
    return False, f"schema violation at {error.json_path}: {error.message}"


def json_validity(pred: str, schema: dict | None) -> tuple[bool, str]:
    """Does the prediction parse as JSON (bare or in a ```json fence) and match ``schema``?

    Returns ``(ok, reason)`` and never raises, so a whole eval set can be scored and the reasons counted.
    """
    fence = _FENCE.search(pred)
    text = (fence.group(1) if fence else pred).strip()
    if not text:
        return False, "empty prediction"
    try:
        instance = json.loads(text)
    except json.JSONDecodeError as exc:
        return False, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if schema is None:
        return True, "ok"
    return _schema_error(schema, instance)


def _contains_term(text: str, term: str) -> bool:
    """Case-insensitive match; Latin-ish term edges need word boundaries ("api" is not in "capital"),
    CJK neighbours never block a match (CJK has no spaces): "API" is found in "调用API接口"."""
    hay = unicodedata.normalize("NFKC", text).casefold()
    needle = unicodedata.normalize("NFKC", term).casefold().strip()
    start = hay.find(needle)
    while start != -1:
        end = start + len(needle)
        left_ok = start == 0 or not (_is_word_char(needle[0]) and _is_word_char(hay[start - 1]))
        right_ok = end == len(hay) or not (_is_word_char(needle[-1]) and _is_word_char(hay[end]))
        if left_ok and right_ok:
            return True
        start = hay.find(needle, start + 1)
    return False


def _check_terms(terms: list[str], kind: str) -> None:
    blank = [i for i, t in enumerate(terms) if not isinstance(t, str) or not t.strip()]
    if blank:
        raise MetricInputError(f"{kind} term list has blank entries at index {blank[:10]}")


def glossary_coverage(pred: str, required_terms: list[str]) -> float:
    """Share (0-1) of required domain terms the answer uses; 1.0 for an empty list (nothing was required)."""
    _check_terms(required_terms, "required")
    if not required_terms:
        return 1.0
    return sum(_contains_term(pred, t) for t in required_terms) / len(required_terms)


def banned_term_rate(pred: str, banned: list[str]) -> float:
    """1.0 if any banned term occurs, else 0.0: one leak fails the answer, and the mean over examples
    reads as "share of answers that used a banned term"."""
    _check_terms(banned, "banned")
    return float(any(_contains_term(pred, t) for t in banned))


def _summary(values: list[int]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)),
            "min": float(arr.min()), "max": float(arr.max())}


def length_stats(texts: list[str]) -> dict[str, Any]:
    """Lengths in tokens (comparable across zh/en) and characters; p90 is numpy's linear interpolation."""
    if not texts:
        raise MetricInputError("length_stats needs at least one text")
    return {"n": len(texts), "tokens": _summary([len(tokenize_for_rouge(t)) for t in texts]),
            "chars": _summary([len(t) for t in texts])}


def _as_finite(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise MetricInputError(f"{name} must be a non-empty list of finite numbers")
    return arr


def bootstrap_ci(values_a: list[float], values_b: list[float] | None = None, n_resamples: int = 1000,
                 alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Percentile bootstrap CI for the mean of ``a``, or of the paired delta ``a - b`` (same seed, same CI).
    Pairing resamples the same examples for both systems, removing example difficulty from the variance."""
    diffs = _as_finite(values_a, "values_a")
    if values_b is not None:
        b = _as_finite(values_b, "values_b")
        if b.size != diffs.size:
            raise MetricInputError(f"paired bootstrap needs equal lengths, got {diffs.size} and {b.size}")
        diffs = diffs - b
    if n_resamples < 1 or not 0 < alpha < 1:
        raise MetricInputError(f"need n_resamples >= 1 and 0 < alpha < 1, got {n_resamples} and {alpha}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 100):  # chunks bound memory at 100 x n indices
        rows = min(100, n_resamples - start)
        means[start : start + rows] = diffs[rng.integers(0, diffs.size, size=(rows, diffs.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(diffs.mean()), "low": float(low), "high": float(high), "n": int(diffs.size),
            "paired": values_b is not None, "n_resamples": n_resamples, "alpha": alpha, "seed": seed}


def _example_scores(pred: str, ref: str) -> dict[str, float]:
    return {"rouge1": 100 * rouge_n(pred, ref, 1)["f"], "rouge2": 100 * rouge_n(pred, ref, 2)["f"],
            "rougeL": 100 * rouge_l(pred, ref)["f"], "bleu": sentence_bleu(pred, ref),
            "token_f1": 100 * token_f1(pred, ref), "exact_match": 100 * exact_match(pred, ref)}


def score_all(answers: list[str], refs: list[str]) -> dict[str, Any]:
    """The summary r1tune reports, all 0-100. ROUGE/F1/EM are means over examples, BLEU/chrF corpus-level.
    `answers` are answers alone (reasoning split off by `models.decoding`); ``per_example`` feeds
    :func:`bootstrap_ci`."""
    _check_pairs(answers, refs)
    answers = list(answers)
    per_example = [_example_scores(p, r) for p, r in zip(answers, refs, strict=True)]
    corpus = bleu(answers, list(refs))

    def mean(key: str) -> float:
        return float(np.mean([row[key] for row in per_example]))

    return {
        "rouge1": mean("rouge1"), "rouge2": mean("rouge2"), "rougeL": mean("rougeL"),
        "bleu": corpus["score"], "bleu_by_script": {k: v["score"] for k, v in corpus["by_script"].items()},
        "chrf": chrf(answers, list(refs)), "exact_match": mean("exact_match"), "token_f1": mean("token_f1"),
        "n": len(refs), "rouge_tokenizer": "characters for Chinese, words otherwise",
        "bleu_signature": corpus["signature"],
        "per_example": [{k: row[k] for k in _PER_EXAMPLE_KEYS} for row in per_example],
    }
