"""The in-memory shape of one training example, shared by every stage.

A `Record` is a conversation (`messages`) plus provenance (`source` = "file:line") and free `meta`
(e.g. a label used for stratified splits). It is tokenizer-free: chat formats turn it into token ids later.
On disk a record is one JSON line: {"id", "messages": [{"role", "content", "reasoning"?}], "source", "meta"}.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from r1tune.errors import DataError

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One turn. `reasoning` is the assistant's chain of thought (DeepSeek-R1 `<think>` content), if any."""

    role: Role
    content: str
    reasoning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        return out


@dataclass
class Record:
    """A conversation to learn from: the last assistant turn is the answer being trained and evaluated."""

    messages: list[Message]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.content_hash()[:16]

    @property
    def prompt_messages(self) -> list[Message]:
        """Everything before the final assistant turn: what the model sees when asked to answer."""
        return self.messages[:-1]

    @property
    def answer(self) -> Message:
        return self.messages[-1]

    def content_hash(self) -> str:
        payload = json.dumps([m.to_dict() for m in self.messages], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": [m.to_dict() for m in self.messages],
            "source": self.source,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> Record:
        """Build and validate a record; `where` ("file:line") goes into the error message."""
        messages = messages_from_list(data.get("messages"), where)
        return cls(
            messages=messages,
            source=str(data.get("source") or where),
            meta=dict(data.get("meta") or {}),
            id=str(data.get("id") or ""),
        )


def messages_from_list(raw: Any, where: str) -> list[Message]:
    """Validate an OpenAI-style message list that must end with a non-empty assistant answer."""
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: `messages` must be a non-empty list")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DataError(f"{where}: messages[{i}].role is {role!r}; allowed: {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"{where}: messages[{i}].content must be a string, got {type(content).__name__}")
        reasoning = m.get("reasoning", m.get("reasoning_content"))
        if reasoning is not None and not isinstance(reasoning, str):
            raise DataError(f"{where}: messages[{i}].reasoning must be a string")
        out.append(Message(role=role, content=content, reasoning=reasoning))
    if out[-1].role != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's answer, got role {out[-1].role!r}")
    if not out[-1].content.strip() and not (out[-1].reasoning or "").strip():
        raise DataError(f"{where}: the assistant answer is empty")
    if not any(m.role == "user" for m in out):
        raise DataError(f"{where}: no user message")
    return out


def write_jsonl(records: Iterable[Record], path: Path) -> int:
    """Write records as JSON lines; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json_lines(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write plain JSON objects one per line (UTF-8, non-ASCII kept readable); returns how many."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file written by `write_json_lines` (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_jsonl(path: Path) -> Iterator[Record]:
    """Read records written by `write_jsonl` (prepared splits); errors name file and line."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
            yield Record.from_dict(data, where)
