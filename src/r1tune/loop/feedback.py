"""The improvement loop's new data: the feedback on one adapter name since its live version went live.

Corrections become training records: a DPO pair (the correction preferred over the answer it replaced)
under `loop.stage: dpo | kto`, a plain record under `sft`; answers to one prompt rated apart become pairs;
under `kto` lone thumbs up/down answers train as such. A seeded share of the corrections is held out (never
trained) for the gate. The files are ordinary data sources, so the data stage cleans and PII-masks them
like any other input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from r1tune.config import LoopConfig
from r1tune.data.records import read_json_lines, read_jsonl, write_json_lines, write_jsonl
from r1tune.serve.store import CompletionRow, FeedbackRow, FeedbackStore, export_feedback

HELD_OUT_FILE, PAIRS_FILE, RECORDS_FILE, THUMBS_FILE = "heldout.jsonl", "pairs.jsonl", "records.jsonl", "thumbs.jsonl"


@dataclass
class LoopFeedback:
    """What the feedback since `since` gives the candidate: counts and the files written."""

    since: datetime
    corrections: int = 0
    pairs: int = 0  # preference pairs trained (corrections with their served answer, rated answers)
    records: int = 0  # plain records trained (corrections under `sft`, or without a served answer)
    thumbs: int = 0  # lone thumbs-rated answers (`kto`)
    heldout: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)  # data sources (path, format) for training

    @property
    def usable(self) -> int:
        return self.pairs + self.records + self.thumbs + self.heldout


def collect_feedback(store: FeedbackStore, cfg: LoopConfig, since: datetime, folder: Path, seed: int) -> LoopFeedback:
    """Write the loop's training files and held-out corrections into `folder`; returns what they hold."""
    def selected(completion: CompletionRow, feedback: FeedbackRow) -> bool:
        return completion.adapter == cfg.adapter and _utc(feedback.created) >= _utc(since)

    exported = export_feedback(store, folder / "export", only=selected)
    corrections = list(read_jsonl(exported.sft_path))
    held_ids = _held_out(corrections, cfg.holdout_share, seed)
    result = LoopFeedback(since=since, corrections=len(corrections), heldout=len(held_ids))
    write_jsonl([r for r in corrections if r.meta["completion_id"] in held_ids], folder / HELD_OUT_FILE)
    pairs = [p for p in read_json_lines(exported.preferences_path) if not _uses(p["meta"], held_ids)]
    paired = {p["meta"].get("completion_id") for p in pairs}
    plain = [r for r in corrections if r.meta["completion_id"] not in held_ids
             and (cfg.stage == "sft" or r.meta["completion_id"] not in paired)]
    if cfg.stage != "sft":
        result.pairs = write_json_lines(pairs, folder / PAIRS_FILE)
    result.records = write_jsonl(plain, folder / RECORDS_FILE)
    if cfg.stage == "kto":
        result.thumbs = write_json_lines(_thumbs(store, selected, held_ids | paired), folder / THUMBS_FILE)
    for count, name, fmt in ((result.pairs, PAIRS_FILE, "preference"), (result.records, RECORDS_FILE, "messages"),
                             (result.thumbs, THUMBS_FILE, "sharegpt")):
        if count:  # an empty file is a data error: only files with rows become sources
            result.sources.append({"path": str(folder / name), "format": fmt})
    return result


def _held_out(corrections: list, share: float, seed: int) -> set[str]:
    """Completion ids of the held-out corrections: `share` of them, at least one when there are two. Drawn
    from the corrections ordered by their content, not by their random completion ids, so the same
    corrections always hold out the same ones."""
    ordered = sorted(corrections, key=lambda r: (r.content_hash(), r.meta["completion_id"]))
    ids = [r.meta["completion_id"] for r in ordered]
    if len(ids) < 2:
        return set()
    count = min(len(ids) - 1, max(1, round(share * len(ids))))
    return set(random.Random(seed).sample(ids, count))


def _uses(meta: dict[str, Any], completion_ids: set[str]) -> bool:
    return bool({meta.get("completion_id"), meta.get("chosen_id"), meta.get("rejected_id")} & completion_ids)


def _thumbs(store: FeedbackStore, selected, excluded: set[str]) -> list[dict[str, Any]]:
    """Lone thumbs-up/down answers as ShareGPT rows with a `kto_tag` (what the data stage reads as KTO)."""
    rows = []
    for completion, feedback in store.rated_completions():
        if feedback.rating not in ("up", "down") or completion.id in excluded or not selected(completion, feedback):
            continue
        turns = [{"from": {"user": "human", "assistant": "gpt"}.get(m["role"], m["role"]), "value": m["content"]}
                 for m in completion.messages]
        rows.append({"conversations": [*turns, {"from": "gpt", "value": completion.answer}],
                     "kto_tag": feedback.rating == "up"})
    return rows


def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
