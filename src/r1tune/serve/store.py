"""The completion and feedback store, and its export into training data for the next fine-tune.

Every completion is logged (PII masked) with the model, adapter and adapter version that produced it;
`POST /v1/feedback` attaches a rating, a corrected answer and tags. SQLite in WAL mode with
`synchronous=FULL` is the default (each feedback is committed, and fsynced, before it is acknowledged, so a
killed server loses nothing it confirmed); any SQLAlchemy URL works, e.g. PostgreSQL.

`export_feedback` turns the store into:
- `sft.jsonl`: corrections as SFT records (the prompt plus the corrected answer), in r1tune's record format;
- `preferences.jsonl`: pairs in TRL's conversational preference format (`prompt`, `chosen`, `rejected`),
  from a correction vs the answer it corrects and from differently rated answers to the same prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from r1tune.data.records import Message, Record, write_json_lines, write_jsonl
from r1tune.errors import R1TuneError


class Base(DeclarativeBase):
    pass


class CompletionRow(Base):
    __tablename__ = "completions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    adapter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    adapter_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_hash: Mapped[str] = mapped_column(String(64), index=True)
    messages: Mapped[list] = mapped_column(JSON)  # the prompt messages, PII masked
    reasoning: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    guards: Mapped[dict] = mapped_column(JSON)
    api_key: Mapped[str | None] = mapped_column(String(128), nullable=True)


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    completion_id: Mapped[str] = mapped_column(ForeignKey("completions.id"), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rating: Mapped[str | None] = mapped_column(String(8), nullable=True)  # "up", "down" or "1".."5"
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # rating mapped to [0, 1]
    corrected_answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list] = mapped_column(JSON)
    api_key: Mapped[str | None] = mapped_column(String(128), nullable=True)


class UnknownCompletion(R1TuneError):
    """Feedback names a completion id the store has never seen."""


class FeedbackRefused(R1TuneError):
    """Feedback that would teach nothing: an empty correction, or one identical to the served answer."""


def _check_correction(correction: str | None, answer: str) -> None:
    if correction is None:
        return
    if not correction.strip():
        raise FeedbackRefused("corrected_answer is empty; leave it out to send only a rating")
    if correction.strip() == answer.strip():
        raise FeedbackRefused("corrected_answer is identical to the served answer; send a rating "
                              "(e.g. `up`) to approve an answer as it is")


def rating_score(rating: str | int | None) -> float | None:
    """`up`/`down` and 1-5 stars on one scale: down = 1 star = 0, up = 5 stars = 1."""
    if rating is None:
        return None
    if rating in ("up", "down"):
        return 1.0 if rating == "up" else 0.0
    return (int(rating) - 1) / 4


def prompt_hash(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


class FeedbackStore:
    """Thread-safe (one session per call); call from worker threads, not the event loop."""

    def __init__(self, url: str) -> None:
        connect_args: dict[str, Any] = {}
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            connect_args = {"check_same_thread": False, "timeout": 30}
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        shown = _without_password(url)
        try:
            self.engine = create_engine(url, connect_args=connect_args, pool_pre_ping=not self.is_sqlite)
        except ModuleNotFoundError as err:
            raise R1TuneError(f"cannot open the feedback database {shown}: its driver {err.name!r} is not installed",
                              hint=f"pip install {err.name}; for PostgreSQL, use a postgresql+psycopg:// URL and "
                              "pip install 'r1tune[postgres]'") from None
        except Exception as err:
            raise R1TuneError(f"cannot open the feedback database {shown}: {err}",
                              hint="check serve.database_url (an SQLAlchemy URL)") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            Base.metadata.create_all(self.engine)
        except Exception as err:  # refused connection, bad credentials, missing database, read-only file
            self.engine.dispose()
            first = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
            raise R1TuneError(f"cannot connect to the feedback database {shown}: {first}",
                              hint="is the database server running, and do the URL's user, password and "
                              "database exist? (serve.database_url)") from None
        self.url = url

    def close(self) -> None:
        self.engine.dispose()

    def log_completion(self, **fields: Any) -> None:
        fields.setdefault("created", datetime.now(timezone.utc))
        fields["prompt_hash"] = prompt_hash(fields["messages"])
        with Session(self.engine) as session, session.begin():
            session.add(CompletionRow(**fields))

    def add_feedback(self, completion_id: str, rating: str | int | None, corrected_answer: str | None,
                     tags: list[str], api_key: str | None = None) -> int:
        """Store one feedback and commit it before returning its id."""
        with Session(self.engine) as session, session.begin():
            completion = session.get(CompletionRow, completion_id)
            if completion is None:
                raise UnknownCompletion(f"no completion with id {completion_id!r}")
            _check_correction(corrected_answer, completion.answer)
            row = FeedbackRow(completion_id=completion_id, created=datetime.now(timezone.utc),
                              rating=None if rating is None else str(rating), score=rating_score(rating),
                              corrected_answer=corrected_answer, tags=list(tags), api_key=api_key)
            session.add(row)
            session.flush()
            return row.id

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with Session(self.engine) as session:
            return {"completions": session.scalar(select(func.count()).select_from(CompletionRow)) or 0,
                    "feedback": session.scalar(select(func.count()).select_from(FeedbackRow)) or 0}

    def completions_with_feedback(self) -> list[tuple[CompletionRow, FeedbackRow | None]]:
        """Every completion with its latest feedback (None when it has none), oldest first."""
        query = (select(CompletionRow, FeedbackRow).outerjoin(FeedbackRow, FeedbackRow.completion_id == CompletionRow.id)
                 .order_by(CompletionRow.created, FeedbackRow.id))
        return self._latest_feedback(query)

    def rated_completions(self) -> list[tuple[CompletionRow, FeedbackRow]]:
        """Each completion with feedback, paired with its latest feedback."""
        query = (select(CompletionRow, FeedbackRow).join(FeedbackRow, FeedbackRow.completion_id == CompletionRow.id)
                 .order_by(FeedbackRow.id))
        return self._latest_feedback(query)

    def _latest_feedback(self, query: Any) -> list[Any]:
        """(completion, feedback) rows of `query` (ordered by feedback id within a completion), one per
        completion: its last feedback, detached from the session."""
        with Session(self.engine) as session:
            latest: dict[str, tuple[Any, Any]] = {}
            for completion, feedback in session.execute(query).all():
                latest[completion.id] = (completion, feedback)
            session.expunge_all()
            return list(latest.values())


def _without_password(url: str) -> str:
    """The URL as it may appear in messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even parseable: show only the scheme
        return url.split(":", 1)[0] + ":…"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass
class ExportResult:
    sft_path: Path
    preferences_path: Path
    sft: int
    preferences: int


def export_feedback(store: FeedbackStore, out_dir: Path, min_score_gap: float = 0.25,
                    only: Callable[[CompletionRow, FeedbackRow], bool] | None = None) -> ExportResult:
    """Write corrections as SFT records and rated answers as preference pairs (see the module docstring);
    `only` keeps the (completion, latest feedback) rows it accepts (e.g. the improvement loop's: one adapter
    name, feedback since its live version)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rated = [row for row in store.rated_completions() if only is None or only(*row)]
    records: list[Record] = []
    pairs: list[dict[str, Any]] = []
    by_prompt: dict[str, list[tuple[CompletionRow, FeedbackRow]]] = defaultdict(list)
    for completion, feedback in rated:
        prompt = [Message(m["role"], m["content"]) for m in completion.messages]
        meta = {"completion_id": completion.id, "model": completion.model, "adapter": completion.adapter,
                "adapter_version": completion.adapter_version, "rating": feedback.rating, "tags": feedback.tags}
        correction = (feedback.corrected_answer or "").strip()
        if correction:
            records.append(Record(prompt + [Message("assistant", correction)],
                                  source=f"feedback:{feedback.id}", meta=meta))
            if correction != completion.answer.strip() and completion.answer.strip():
                pairs.append(_pair(completion.messages, correction, completion.answer, meta))
        if feedback.score is not None and completion.answer.strip():
            by_prompt[completion.prompt_hash].append((completion, feedback))
    for group in by_prompt.values():
        group.sort(key=lambda cf: -(cf[1].score or 0.0))
        for i, (better, better_fb) in enumerate(group):
            for worse, worse_fb in group[i + 1 :]:
                if (better_fb.score or 0) - (worse_fb.score or 0) < min_score_gap:
                    continue
                if better.answer.strip() == worse.answer.strip():
                    continue
                pairs.append(_pair(better.messages, better.answer, worse.answer,
                                   {"chosen_id": better.id, "rejected_id": worse.id,
                                    "chosen_rating": better_fb.rating, "rejected_rating": worse_fb.rating}))
    sft_path = out_dir / "sft.jsonl"
    write_jsonl(records, sft_path)
    pref_path = out_dir / "preferences.jsonl"
    write_json_lines(pairs, pref_path)
    return ExportResult(sft_path, pref_path, len(records), len(pairs))


def _pair(messages: list[dict], chosen: str, rejected: str, meta: dict[str, Any]) -> dict[str, Any]:
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "meta": meta}
