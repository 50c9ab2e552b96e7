"""Synthetic question-answer records from the user's documents, written by the teacher and checked before a
person reviews them.

Each document chunk (the data stage's chunker) goes to the teacher once, asking for `per_chunk` questions
the chunk answers, each with an answer taken from the chunk, as JSON lines. A pair is kept only when:
- it is grounded: every key fact of the answer (numbers with units, codes, URLs, menu paths; `eval.facts`)
  occurs in the chunk, and at least `min_support` of its words (characters for Chinese) do;
- its question is not a near-duplicate of a kept one (character similarity of 90% or more);
- it does not leak the test set: neither its question nor its answer is a near-copy of a test record's.
Dropped pairs go to the quarantine with the reason; a reply that is not JSON lines is quarantined whole.
Augmentation asks the teacher to reword each kept question (`paraphrase`) or to carry it to the other of
Chinese/English and back (`back_translation`); the variants keep the answer and pass the same checks.
Every record carries its provenance: document, chunk location, teacher model, how it was made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from r1tune.data.chunking import Chunk
from r1tune.data.records import Message, Record
from r1tune.eval.facts import extract_facts
from r1tune.eval.metrics import tokenize_for_rouge
from r1tune.teacher.client import TeacherReply

Ask = Callable[[list[list[dict[str, str]]], int], list[list[TeacherReply]]]
NEAR_COPY = 90.0  # rapidfuzz ratio (0-100) from which two texts count as the same
_JSON_OBJECT = re.compile(r"\{.*?\}", re.S)
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class SynthSettings:
    per_chunk: int = 3
    min_support: float = 0.6
    augment: tuple[str, ...] = ()
    teacher: str = ""  # the model name, for provenance


@dataclass
class SynthPair:
    question: str
    answer: str
    document: str
    where: str
    chunk: str
    heading: str = ""
    kind: str = "generated"  # or "paraphrase" / "back_translation"
    meta: dict[str, Any] = field(default_factory=dict)

    def record(self, teacher: str) -> Record:
        provenance = {"synthetic": self.kind, "document": self.document, "heading": self.heading, "where": self.where,
                      "teacher": teacher, **self.meta}
        return Record([Message("user", self.question), Message("assistant", self.answer)],
                      source=f"synth:{self.where}", meta=provenance)


def generation_messages(chunk: str, title: str, n: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write training data for a company's assistant. Use only the "
             "excerpt you are given; never add facts it does not state."},
            {"role": "user", "content": f"Document: {title}\nExcerpt:\n\"\"\"\n{chunk}\n\"\"\"\n\nWrite {n} different "
             "questions a customer or an employee could ask that this excerpt answers, in the excerpt's language. "
             'Reply with one JSON object per line: {"question": "...", "answer": "..."}; each answer complete and '
             "taken from the excerpt."}]


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """The (question, answer) objects of a JSON-lines reply (fenced or not); objects without both are skipped."""
    pairs = []
    for found in _JSON_OBJECT.findall(text):
        try:
            item = json.loads(found)
        except json.JSONDecodeError:
            continue
        question, answer = item.get("question"), item.get("answer")
        if isinstance(question, str) and isinstance(answer, str) and question.strip() and answer.strip():
            pairs.append((question.strip(), answer.strip()))
    return pairs


def grounding_problem(answer: str, chunk: str, min_support: float) -> str | None:
    """Why `answer` is not grounded in `chunk`, or None when it is."""
    missing = extract_facts(answer) - extract_facts(chunk)
    if missing:
        return "facts not in the chunk: " + ", ".join(sorted(value for _, value in missing))
    words = tokenize_for_rouge(answer)
    present = set(tokenize_for_rouge(chunk))
    support = sum(w in present for w in words) / max(len(words), 1)
    if support < min_support:
        return f"only {support:.0%} of the answer's words are in the chunk (need {min_support:.0%})"
    return None


class PairFilter:
    """The checks every pair passes through, in order: grounding, near-duplicate question, test leak."""

    def __init__(self, min_support: float, test_records: Sequence[Record]) -> None:
        self.min_support = min_support
        self.test_texts = [(r.prompt_messages[-1].content, r.answer.content) for r in test_records if r.prompt_messages]
        self.kept_questions: list[str] = []

    def problem(self, pair: SynthPair) -> str | None:
        from rapidfuzz import fuzz, process

        reason = grounding_problem(pair.answer, pair.chunk, self.min_support)
        if reason:
            return "ungrounded: " + reason
        if process.extractOne(pair.question, self.kept_questions, scorer=fuzz.ratio, score_cutoff=NEAR_COPY):
            return "near-duplicate of a kept question"
        for question, answer in self.test_texts:
            if fuzz.ratio(pair.question, question) >= NEAR_COPY or fuzz.ratio(pair.answer, answer) >= NEAR_COPY:
                return f"leaks a test record ({question[:60]!r})"
        self.kept_questions.append(pair.question)
        return None


def synthesize(chunks: Sequence[tuple[str, Chunk]], ask: Ask, settings: SynthSettings,
               test_records: Sequence[Record] = ()) -> tuple[list[SynthPair], list[dict[str, Any]]]:
    """Kept pairs (generated, then their augmentations) and the quarantine rows of everything dropped."""
    replies = ask([generation_messages(c.text, title, settings.per_chunk) for title, c in chunks], 1)
    checks, kept, quarantine = PairFilter(settings.min_support, test_records), [], []
    for (title, chunk), (reply, *_) in zip(chunks, replies, strict=True):
        found = parse_pairs(reply.content)
        if not found:
            quarantine.append({"where": chunk.where, "reason": "the reply holds no question/answer JSON lines",
                               "reply": reply.content[:500]})
        for question, answer in found:
            _keep(SynthPair(question, answer, title, chunk.where, chunk.text, chunk.heading), checks, kept, quarantine)
    for kind in settings.augment:
        for pair in list(kept):
            if pair.kind == "generated":
                _keep(_variant(pair, kind, ask), checks, kept, quarantine)
    return kept, quarantine


def _keep(pair: SynthPair, checks: PairFilter, kept: list[SynthPair], quarantine: list[dict[str, Any]]) -> None:
    reason = checks.problem(pair)
    if reason is None:
        kept.append(pair)
    else:
        quarantine.append({"where": pair.where, "kind": pair.kind, "reason": reason, "question": pair.question,
                           "answer": pair.answer})


def _variant(pair: SynthPair, kind: str, ask: Ask) -> SynthPair:
    """The pair's question reworded (`paraphrase`) or carried to the other language and back."""
    if kind == "paraphrase":
        question = _ask_text(ask, f"Reword this question without changing its meaning. Reply with the question "
                                  f"only.\n\n{pair.question}")
    else:
        other = "English" if _CJK.search(pair.question) else "Chinese"
        there = _ask_text(ask, f"Translate into {other}. Reply with the translation only.\n\n{pair.question}")
        back = "Chinese" if other == "English" else "English"
        question = _ask_text(ask, f"Translate into {back}. Reply with the translation only.\n\n{there}")
    return SynthPair(question or pair.question, pair.answer, pair.document, pair.where, pair.chunk, pair.heading, kind,
                     {"variant_of": pair.question})


def _ask_text(ask: Ask, prompt: str) -> str:
    [[reply]] = ask([[{"role": "user", "content": prompt}]], 1)
    return reply.content.strip().strip('"').strip()


def pair_rows(pairs: Sequence[SynthPair], teacher: str) -> list[dict[str, Any]]:
    """The review rows: record id, the pair, and its provenance."""
    rows = []
    for pair in pairs:
        record = pair.record(teacher)
        rows.append({"id": record.id, **{k: v for k, v in asdict(pair).items() if k != "meta"}, **pair.meta})
    return rows
