"""Teacher jobs over a project: which teacher answers (`teacher.source`), and `r1tune synth`'s files."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tune.errors import ConfigError


@dataclass
class OpenTeacher:
    ask: Any  # teacher/traces.Ask
    usage: Any  # () -> dict: requests, tokens, cost, cache hits


@contextlib.contextmanager
def open_teacher(cfg: Any, usage_file: Path | None = None) -> Iterator[OpenTeacher]:
    """The configured teacher: the endpoint client (answers cached under r1tune's home folder, shared by
    every project) or the base model itself; its usage is written to `usage_file` even when the job fails."""
    if cfg.teacher.source == "self":
        local = _self_teacher(cfg)
        yield OpenTeacher(local.ask_many, lambda: dict(local.ledger))
        return
    from r1tune.home import r1tune_home
    from r1tune.teacher.client import TeacherClient

    client = TeacherClient(cfg.teacher, r1tune_home() / "teacher-cache")
    try:
        yield OpenTeacher(client.ask_many, client.ledger.as_dict)
    finally:
        if usage_file is not None:
            usage_file.write_text(json.dumps(client.ledger.as_dict(), indent=2), encoding="utf-8")


def _self_teacher(cfg: Any) -> Any:
    from r1tune import models
    from r1tune.teacher.local import LocalTeacher

    plan = models.inference_plan(cfg.train.precision, cfg.model)
    loaded = models.load(cfg.model, cfg.train.reasoning, plan=plan)
    return LocalTeacher(loaded, cfg.teacher.temperature, cfg.teacher.max_tokens, cfg.project.seed, plan.compute,
                        cfg.eval.batch_size)


def synth_for_project(cfg: Any, out: Path) -> dict[str, Any]:
    """`r1tune synth`: records from `teacher.synth_documents` into `out` (records.jsonl, quarantine.jsonl, the
    review files, synth.json); returns the summary."""
    from r1tune.data.records import write_json_lines, write_jsonl
    from r1tune.teacher.review import write_review_files
    from r1tune.teacher.synth import SynthSettings, pair_rows, synthesize

    chunks = document_chunks(cfg)
    out.mkdir(parents=True, exist_ok=True)
    teacher_name = cfg.teacher.model if cfg.teacher.source == "endpoint" else f"self:{cfg.model.name}"
    settings = SynthSettings(cfg.teacher.synth_per_chunk, cfg.teacher.synth_min_support,
                             tuple(cfg.teacher.synth_augment), teacher_name)
    with open_teacher(cfg, out / "teacher_usage.json") as teacher:
        pairs, quarantine = synthesize(chunks, teacher.ask, settings, _test_records(cfg))
        usage = teacher.usage()
    records = [p.record(teacher_name) for p in pairs]
    write_jsonl(records, out / "records.jsonl")
    write_json_lines(quarantine, out / "quarantine.jsonl")
    files = write_review_files(pair_rows(pairs, teacher_name), records, out)
    summary = {"chunks": len(chunks), "kept": len(records), "quarantined": len(quarantine),
               "by_kind": {k: sum(p.kind == k for p in pairs) for k in ("generated", *settings.augment)},
               "review_files": [str(f) for f in files], "teacher": usage}
    (out / "synth.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary


def document_chunks(cfg: Any) -> list[tuple[str, Any]]:
    """(document title, chunk) for every document of `teacher.synth_documents`, chunked as the data stage does."""
    from r1tune.data.chunking import approx_tokens, chunk_document
    from r1tune.data.documents import DOCUMENT_SUFFIXES, load_document

    if not cfg.teacher.synth_documents:
        raise ConfigError("teacher.synth_documents is empty: there is nothing to write records from",
                          hint="list document files or folders (PDF, DOCX, Markdown, HTML, TXT) there")
    files: list[Path] = []
    for path in cfg.teacher.synth_documents:
        if not path.exists():
            raise ConfigError(f"teacher.synth_documents: {path} does not exist")
        files += sorted(p for p in path.rglob("*") if p.suffix.lower() in DOCUMENT_SUFFIXES) if path.is_dir() else [path]
    chunking = cfg.data.chunking
    return [(doc.title, chunk) for doc in map(load_document, files)
            for chunk in chunk_document(doc, approx_tokens, chunking.max_tokens, chunking.overlap_tokens,
                                        chunking.min_tokens)]


def _test_records(cfg: Any) -> list[Any]:
    """The project's test sources, to keep synthetic records from leaking them."""
    from r1tune.data.quarantine import Quarantine
    from r1tune.data.readers import read_source

    return [r for source in cfg.data.test_sources for r in read_source(source, Quarantine())]
