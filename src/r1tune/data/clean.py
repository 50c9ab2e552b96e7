"""Per-record cleaning: the ordered text transforms and filters of `data.clean.steps`, plus PII masking.

`RecordCleaner.clean(record_dict)` applies the configured steps in order to every text of a record (each
message's content and reasoning, and a preference pair's rejected answer) and returns the cleaned record
or the reason it was rejected, plus a note for every step that changed it. It also computes the keys the
global steps need: the normalised-text hash for exact dedup and the shingle hashes for MinHash.
Workers build their own cleaner from plain config objects, so it pickles cheaply into `datasets.map`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1tune.config import CleanConfig, PiiConfig
from r1tune.errors import ConfigError

TEXT_STEPS = ("nfkc", "control_chars", "html_to_text", "whitespace", "regex_remove", "opencc", "terms")
FILTER_STEPS = ("length_filter", "language_filter", "repetition_filter", "garbage_filter")
GLOBAL_STEPS = ("exact_dedup", "near_dedup")

# NFKC folds full-width letters and digits (ＡＢＣ１２３ → ABC123) but would also turn Chinese punctuation
# (，：；！？（）) into ASCII, which changes the style of every Chinese answer: keep those as written.
_CJK_PUNCT = "，：；！？（）［］｛｝～"
_NFKC_KEEP = re.compile(f"([{_CJK_PUNCT}]+)")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]")
_HTML_HINT = re.compile(
    r"<(?:/?(?:p|br|div|span|a|b|i|u|em|strong|ul|ol|li|table|tr|td|th|thead|tbody|h[1-6]|img|font|html|body|"
    r"section|article|blockquote|pre|code|sup|sub|hr|center|small|label|style|script)\b[^>]*|!--.*?--)>"
    r"|&(?:nbsp|amp|lt|gt|quot|apos|#\d{2,6}|#x[0-9a-fA-F]{2,5});",
    re.I | re.S,
)
_HTML_TAG = re.compile(r"<[a-zA-Z!/]")
_ODD_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_TRAILING_SPACES = re.compile(r"[ \t]+\n")
_MANY_NL = re.compile(r"\n{3,}")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_OTHER_LETTER = re.compile(r"[^\W\d_A-Za-z\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_NOT_WORD = re.compile(r"[\W_]+")
# Garbage: anything that is not a letter, digit, space or ordinary punctuation; plus mojibake markers
# (UTF-8 read as Latin-1 "Ã©", GBK read as UTF-8 "锟斤拷", replacement characters).
_ODD_CHAR = re.compile(r"[^\w\s.,;:!?'\"()\[\]{}<>/\\|@#$%^&*+=~`\-–—…·、。，；：！？“”‘’（）《》【】「」『』〈〉％￥$€£]")
_MOJIBAKE = re.compile(r"[ÃÂÅÐÑ][\u0080-\u00bf]|锟斤拷|烫烫烫|屯屯屯|\ufffd|ï»¿")
_REPEAT_GRAM = 10


@dataclass
class CleanResult:
    record: dict[str, Any] | None
    issues: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, reason, action)
    pii: Counter = field(default_factory=Counter)
    lang: str = "other"


def detect_language(text: str) -> str:
    """zh, en or other, by script: CJK characters against Latin words (a Chinese word is ~1.5 characters)."""
    cjk = len(_CJK.findall(text))
    words = len(_LATIN_WORD.findall(text))
    if cjk and cjk >= words:
        return "zh"
    if words and words >= len(_OTHER_LETTER.findall(text)) / 4:
        return "en"
    return "zh" if cjk else "other"


def normalized_key_text(text: str) -> str:
    """Text for exact-duplicate detection: case-folded, punctuation and whitespace removed."""
    return _NOT_WORD.sub("", text.casefold())


def shingle_text(text: str) -> str:
    """Text for near-duplicate shingles: case-folded words separated by single spaces."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def nfkc(text: str) -> str:
    if text.isascii():
        return text
    parts = _NFKC_KEEP.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def strip_control(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def html_to_text(text: str) -> str:
    """Visible text of an HTML fragment, blocks on their own lines; plain text (incl. `a < b`) unchanged."""
    if ("<" not in text and "&" not in text) or not _HTML_HINT.search(text):
        return text
    if not _HTML_TAG.search(text):
        return html.unescape(text)
    import lxml.html
    from lxml.etree import ParserError

    from r1tune.data.documents import html_blocks

    try:
        root = lxml.html.fragment_fromstring(text, create_parent="div")
    except (ParserError, ValueError):
        return text
    return "\n".join(block for _, block in html_blocks(root))


def normalize_whitespace(text: str) -> str:
    """Unicode spaces to ASCII, runs of spaces inside a line to one, no trailing spaces, at most one blank line.

    Leading indentation is kept: answers with code or nested lists depend on it.
    """
    text = _INNER_SPACES.sub(" ", _ODD_SPACES.sub(" ", text))
    if "\n" in text:
        text = _MANY_NL.sub("\n\n", _TRAILING_SPACES.sub("\n", text))
    return text.strip()


def repetition_share(text: str) -> float:
    """Share of a text that repeats itself: duplicate lines, or 10-character n-grams seen before.

    Punctuation and spacing are ignored, so ruler lines (-----) and aligned tables do not count. The n-gram
    share is computed on code points with numpy (a rolling hash and `np.unique`), ~10× faster than a
    Python set of substrings on typical answers.
    """
    import numpy as np

    norm = shingle_text(text)
    if len(norm) < 3 * _REPEAT_GRAM:
        return 0.0
    line_share = 0.0
    if text.count("\n") >= 2:
        lines = [ln for ln in (shingle_text(line) for line in text.split("\n")) if ln]
        dup_chars = sum(len(ln) * (n - 1) for ln, n in Counter(lines).items())
        line_share = dup_chars / max(1, sum(len(ln) for ln in lines))
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    windows = len(codes) - _REPEAT_GRAM + 1
    rolling = np.zeros(windows, dtype=np.uint64)
    for j in range(_REPEAT_GRAM):
        rolling = rolling * np.uint64(0x100000001B3) + codes[j:j + windows]
    gram_share = 1.0 - len(np.unique(rolling)) / windows
    return max(line_share, gram_share)


def clean_ratio(text: str) -> float:
    """Share of characters that are letters, digits, spaces or ordinary punctuation (mojibake counts as odd)."""
    if not text:
        return 1.0
    odd = len(_ODD_CHAR.findall(text)) + sum(len(m) for m in _MOJIBAKE.findall(text))
    return max(0.0, 1.0 - odd / len(text))


def load_terms(cfg: CleanConfig) -> dict[str, str]:
    """`terms` plus `terms_file` (CSV/TSV with two columns, or a JSON/YAML mapping)."""
    terms = dict(cfg.terms)
    path = cfg.terms_file
    if path is None:
        return terms
    if not Path(path).is_file():
        raise ConfigError(f"data.clean.terms_file: file not found: {path}")
    if Path(path).suffix.lower() in (".json", ".yaml", ".yml"):
        import yaml

        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig"))
        if not isinstance(loaded, dict):
            raise ConfigError(f"data.clean.terms_file: {path} must hold a mapping variant: canonical")
        terms.update({str(k): str(v) for k, v in loaded.items()})
        return terms
    import csv

    from r1tune.data.files import TABLE_SUFFIXES, detect_encoding

    delimiter = TABLE_SUFFIXES.get(Path(path).suffix.lower(), ",")
    with Path(path).open(encoding=detect_encoding(Path(path)), newline="") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter=delimiter), start=1):
            if not row or not row[0].strip() or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ConfigError(f"data.clean.terms_file: {path}:{number}: expected 'variant{delimiter}canonical'")
            terms[row[0].strip()] = row[1].strip()
    return terms


def _terms_replacer(terms: dict[str, str]) -> Callable[[str], str] | None:
    """One regex for all variants, longest first; ASCII variants only match as whole words."""
    variants = [v for v in terms if v and v != terms[v]]
    if not variants:
        return None
    parts = []
    for variant in sorted(variants, key=len, reverse=True):
        escaped = re.escape(variant)
        parts.append(rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])" if variant.isascii() else escaped)
    pattern = re.compile("|".join(parts))
    return lambda text: pattern.sub(lambda m: terms[m.group()], text)


class RecordCleaner:
    """Applies the per-record steps of one config; picklable (compiled state is rebuilt lazily)."""

    def __init__(self, steps: list[str], clean: CleanConfig, pii: PiiConfig, salt: str = "") -> None:
        self.steps = [s for s in steps if s not in GLOBAL_STEPS]
        self.cfg = clean
        self.pii_cfg = pii
        self.salt = salt
        self._transforms: list[tuple[str, Callable[[str], str]]] | None = None
        self._masker = None
        self._check()

    def _check(self) -> None:
        for pattern in self.cfg.regex_remove:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"data.clean.regex_remove: {pattern!r} is not a valid regex ({err})") from None
        if "pii" in self.steps and self.pii_cfg.enabled and self.pii_cfg.strategy == "hash" and not self.salt:
            raise ConfigError("data.pii.strategy `hash` needs a secret salt",
                              hint=f"export {self.pii_cfg.salt_env}=<a long random string>")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_transforms"] = None
        state["_masker"] = None
        return state

    # -- building -------------------------------------------------------------------------------------

    def _build(self) -> list[tuple[str, Callable[[str], str]]]:
        transforms: list[tuple[str, Callable[[str], str]]] = []
        for step in self.steps:
            fn = self._transform(step)
            if fn is not None:
                transforms.append((step, fn))
        return transforms

    def _transform(self, step: str) -> Callable[[str], str] | None:
        cfg = self.cfg
        if step == "nfkc":
            return nfkc
        if step == "control_chars":
            return strip_control
        if step == "html_to_text":
            return html_to_text
        if step == "whitespace":
            return normalize_whitespace
        if step == "regex_remove" and cfg.regex_remove:
            patterns = [re.compile(p) for p in cfg.regex_remove]

            def remove(text: str) -> str:
                for pattern in patterns:
                    text = pattern.sub("", text)
                return text

            return remove
        if step == "opencc" and cfg.opencc != "none":
            import opencc

            converter = opencc.OpenCC(cfg.opencc)
            return lambda text: converter.convert(text) if _CJK.search(text) else text
        if step == "terms":
            return _terms_replacer(load_terms(cfg))
        if step == "pii" and self.pii_cfg.enabled:
            return self._mask
        return None

    def _mask(self, text: str) -> str:
        if self._masker is None:
            from r1tune.data.pii import PiiMasker

            self._masker = PiiMasker(self.pii_cfg.strategy, self.salt, self.pii_cfg.types,
                                      names=self.pii_cfg.names, person_scope=self.pii_cfg.person_scope)
        masked, spans = self._masker.mask(text)
        for span in spans:
            self._found[span.type] += 1
        return masked

    # -- cleaning -------------------------------------------------------------------------------------

    def clean(self, record: dict[str, Any]) -> CleanResult:
        """Clean one record dict ({"messages": [...], "meta": {...}, ...}); never raises on bad text."""
        if self._transforms is None:
            self._transforms = self._build()
        result = CleanResult(record)
        self._found: Counter = Counter()
        changed: list[str] = []
        for step in self.steps:
            if step in FILTER_STEPS:
                reason = self._filter(step, record)
                if reason:
                    result.issues.append(("filter", reason, "rejected"))
                    result.record = None
                    return result
                continue
            fn = next((f for s, f in self._transforms if s == step), None)
            if fn is not None and _apply(record, fn):
                changed.append(step)
        if not record["messages"][-1]["content"].strip() and not (record["messages"][-1].get("reasoning") or ""):
            result.issues.append(("filter", "answer is empty after cleaning", "rejected"))
            result.record = None
            return result
        if self._placeholder_check(record, result):
            return result
        if (record.get("meta") or {}).get("rejected"):
            result.issues.append(("preference", "has a rejected answer; no training method uses it yet: trained "
                                                "as supervised fine-tuning on the chosen answer", "flagged"))
        text_steps = [s for s in changed if s != "pii"]
        if text_steps:
            result.issues.append(("clean", "changed by " + ", ".join(text_steps), "changed"))
        if self._found:
            result.pii = self._found
            found = ", ".join(f"{t}×{n}" for t, n in sorted(self._found.items()))
            result.issues.append(("pii", f"masked {found}", "changed"))
        result.lang = detect_language(record_text(record))
        return result

    def _placeholder_check(self, record: dict[str, Any], result: CleanResult) -> bool:
        """Flag (or reject, returning True) a record with unfilled template placeholders."""
        if self.cfg.placeholders == "off":
            return False
        from r1tune.data.placeholders import find_placeholders

        found = find_placeholders(record_texts(record))
        if not found:
            return False
        reason = "unfilled template placeholder(s) " + ", ".join(found[:5])
        if self.cfg.placeholders == "quarantine":
            result.issues.append(("placeholders", reason, "rejected"))
            result.record = None
            return True
        result.issues.append(("placeholders", reason, "flagged"))
        return False

    def _filter(self, step: str, record: dict[str, Any]) -> str | None:
        cfg = self.cfg
        texts = record_texts(record)
        answer = record["messages"][-1]["content"]
        if step == "length_filter":
            if len(answer.strip()) < cfg.min_answer_chars:
                return f"answer shorter than {cfg.min_answer_chars} characters"
            total = sum(len(t) for t in texts)
            if cfg.max_chars is not None and total > cfg.max_chars:
                return f"longer than {cfg.max_chars} characters ({total})"
        elif step == "language_filter" and cfg.languages:
            lang = detect_language(record_text(record))
            if lang not in cfg.languages:
                return f"language {lang} not in {cfg.languages}"
        elif step == "repetition_filter":  # only answers: a repetitive prompt teaches nothing bad
            for text in answer_texts(record):
                share = repetition_share(text)
                if share > cfg.max_repetition:
                    return f"repetitive text ({share:.0%} repeated > {cfg.max_repetition:.0%})"
        elif step == "garbage_filter":
            ratio = clean_ratio("".join(texts))
            if ratio < cfg.min_clean_ratio:
                return f"garbled text (only {ratio:.0%} ordinary characters < {cfg.min_clean_ratio:.0%})"
        return None


def _apply(record: dict[str, Any], fn: Callable[[str], str]) -> bool:
    """Run a text transform over every text of the record in place; True if anything changed."""
    changed = False
    for message in record["messages"]:
        for key in ("content", "reasoning"):
            value = message.get(key)
            if isinstance(value, str) and value:
                new = fn(value)
                if new != value:
                    message[key] = new
                    changed = True
    meta = record.get("meta") or {}
    if isinstance(meta.get("rejected"), str):
        new = fn(meta["rejected"])
        if new != meta["rejected"]:
            meta["rejected"] = new
            changed = True
    return changed


def record_texts(record: dict[str, Any]) -> list[str]:
    out = []
    for message in record["messages"]:
        out.append(message["content"])
        if message.get("reasoning"):
            out.append(message["reasoning"])
    return out


def answer_texts(record: dict[str, Any]) -> list[str]:
    return [t for m in record["messages"] if m["role"] == "assistant" for t in (m["content"], m.get("reasoning")) if t]


def record_text(record: dict[str, Any]) -> str:
    """All message texts joined: what dedup and language detection look at."""
    return "\n".join(record_texts(record))
