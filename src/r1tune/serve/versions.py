"""The model version registry, in the project's database (the feedback store's: SQLite or PostgreSQL).

A version is a trained run registered under an adapter name: its parent version, run folder, result kind,
data and config hashes, headline eval metrics, and a status: `candidate` → `live` (promoted, by whom,
when, why) → `retired`; or `rejected`. One version per name is live. Promoting retires the live one;
rolling back makes the most recently retired one live again. Every change is one transaction, so the
registry is never half-updated; weights stay in their run folders until deleted on purpose.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from r1tune.errors import R1TuneError
from r1tune.serve.store import Base, FeedbackStore

STATUSES = ("candidate", "live", "retired", "rejected")


class VersionError(R1TuneError):
    """A registry request that cannot be done (unknown version, rejected without --force, nothing to roll back)."""


class VersionRow(Base):
    __tablename__ = "versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    data_hash: Mapped[str] = mapped_column(String(64))
    config_hash: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class VersionRegistry:
    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self.engine = store.engine
        Base.metadata.create_all(self.engine, tables=[VersionRow.__table__])

    def register(self, run: Any, name: str, parent: str | None = None,
                 metrics: dict[str, Any] | None = None) -> VersionRow:
        """A trained run becomes a `candidate` version of `name` (its id is the run's id), with `metrics`
        or else the headline numbers of its own evaluation."""
        if not (run.whole_model if run.trains_whole_model else run.adapter).is_dir():
            raise VersionError(f"{run.path} has no trained result to register", hint="train it first")
        row = VersionRow(id=run.run_id, name=name, parent=parent, run_path=str(run.path),
                         kind="whole_model" if run.trains_whole_model else "adapter", data_hash=_data_hash(run),
                         config_hash=hashlib.sha256(run.config_file.read_bytes()).hexdigest(),
                         metrics=_headline(run) if metrics is None else metrics, status="candidate", created=_now())
        version_id = row.id
        with Session(self.engine) as session, session.begin():
            if session.get(VersionRow, row.id) is not None:
                raise VersionError(f"version {row.id} is already registered")
            if parent is not None and session.get(VersionRow, parent) is None:
                raise VersionError(f"parent version {parent} is not registered")
            session.add(row)
        return self.get(version_id)

    def get(self, version_id: str) -> VersionRow:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(VersionRow, version_id)
            if row is None:
                raise VersionError(f"no version {version_id!r}", hint="see `r1tune versions list`")
            session.expunge(row)
            return row

    def list(self, name: str | None = None) -> list[VersionRow]:
        with Session(self.engine) as session:
            query = select(VersionRow).order_by(VersionRow.created)
            rows = list(session.scalars(query.where(VersionRow.name == name) if name else query))
            session.expunge_all()
            return rows

    def live(self, name: str) -> VersionRow | None:
        return next((v for v in self.list(name) if v.status == "live"), None)

    def promote(self, version_id: str, by: str, reason: str, force: bool = False) -> VersionRow:
        with Session(self.engine) as session, session.begin():
            row = _refuse_rejected(_existing(session, version_id), force)
            for live in session.scalars(select(VersionRow).where(VersionRow.name == row.name,
                                                                 VersionRow.status == "live")):
                _set(live, "retired", by, f"replaced by {version_id}")
            _set(row, "live", by, reason)
        return self.get(version_id)

    def promotable(self, version_id: str, force: bool = False) -> VersionRow:
        """The version, when `promote` would accept it (a rejected one only with `force`)."""
        return _refuse_rejected(self.get(version_id), force)

    def reject(self, version_id: str, by: str, reason: str) -> VersionRow:
        with Session(self.engine) as session, session.begin():
            _set(_existing(session, version_id), "rejected", by, reason)
        return self.get(version_id)

    def rollback(self, name: str, by: str, reason: str) -> VersionRow:
        """The live version of `name` retires; the most recently retired one is live again."""
        with Session(self.engine) as session, session.begin():
            rows = list(session.scalars(select(VersionRow).where(VersionRow.name == name)))
            live = next((r for r in rows if r.status == "live"), None)
            back = _latest_retired(name, rows, live)
            _set(live, "retired", by, f"rolled back: {reason}")
            _set(back, "live", by, f"rollback from {live.id}: {reason}")
            back_id = back.id
        return self.get(back_id)

    def previous_live(self, name: str) -> VersionRow:
        """The version `rollback(name)` would make live again."""
        rows = self.list(name)
        return _latest_retired(name, rows, next((r for r in rows if r.status == "live"), None))

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from version `a` to `b`: config lines, data, and headline metrics."""
        from pathlib import Path

        va, vb = self.get(a), self.get(b)
        config = difflib.unified_diff((Path(va.run_path) / "config.yaml").read_text().splitlines(),
                                      (Path(vb.run_path) / "config.yaml").read_text().splitlines(), a, b, lineterm="")
        metrics = {k: (va.metrics.get(k), vb.metrics.get(k)) for k in sorted(set(va.metrics) | set(vb.metrics))
                   if va.metrics.get(k) != vb.metrics.get(k)}
        return {"config": list(config)[2:], "same_data": va.data_hash == vb.data_hash, "metrics": metrics}


def _latest_retired(name: str, rows: list[VersionRow], live: VersionRow | None) -> VersionRow:
    """The version a rollback of `name` returns to: the one retired last."""
    retired = sorted((r for r in rows if r.status == "retired"), key=lambda r: r.changed_at or r.created)
    if live is None or not retired:
        raise VersionError(f"{name!r} has no live version with a retired one before it to roll back to")
    return retired[-1]


def _refuse_rejected(row: VersionRow, force: bool) -> VersionRow:
    if row.status == "rejected" and not force:
        raise VersionError(f"version {row.id} was rejected ({row.reason}); promote it with --force "
                           "if that is really meant")
    return row


def _existing(session: Session, version_id: str) -> VersionRow:
    row = session.get(VersionRow, version_id)
    if row is None:
        raise VersionError(f"no version {version_id!r}", hint="see `r1tune versions list`")
    return row


def _set(row: VersionRow, status: str, by: str, reason: str) -> None:
    row.status, row.changed_by, row.changed_at, row.reason = status, by, _now(), reason


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _data_hash(run: Any) -> str:
    """One hash over the run's prepared training and validation files."""
    digest = hashlib.sha256()
    for name in ("train.jsonl", "val.jsonl"):
        path = run.data / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _headline(run: Any) -> dict[str, Any]:
    """The eval's headline numbers, when the run was evaluated."""
    from r1tune.artifacts import ArtifactError

    try:
        metrics = run.read_metrics()
    except ArtifactError:
        return {}
    values = {f"tuned_{k}": v for k, v in metrics.tuned.model_dump().items() if isinstance(v, int | float)}
    return {**values, **{f"delta_{k}": v for k, v in metrics.delta.items()}, "n_examples": metrics.n_examples}


def dumps(row: VersionRow) -> str:
    return json.dumps({c.name: getattr(row, c.name) for c in VersionRow.__table__.columns}, default=str, indent=2)


def swap_into_server(server: str, key_env: str, name: str, run_path: str) -> None:
    """Ask a running r1tune server to serve `run_path`'s weights under `name` (its admin swap endpoint:
    no restart, requests in flight finish on the old weights). Raises before any registry change."""
    import os

    import httpx

    key = os.environ.get(key_env, "")
    try:
        reply = httpx.post(f"{server.rstrip('/')}/v1/swap_lora_adapter", json={"lora_name": name, "lora_path": run_path},
                           headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=600)
    except httpx.HTTPError as err:
        raise VersionError(f"cannot reach the server at {server}: {err}",
                           hint="the registry is unchanged; start the server or fix --server, then run again") from None
    if reply.status_code != 200:
        raise VersionError(f"the server at {server} did not swap {name} ({reply.status_code}): {reply.text[:300]}",
                           hint="the registry is unchanged; fix the server side and run the command again")
