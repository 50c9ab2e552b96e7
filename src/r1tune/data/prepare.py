"""`prepare`: read → clean/filter/mask → exact dedup → near dedup → balance and split → write, at any scale.

Records stream from the readers into an Arrow file, the per-record steps run through `datasets.map` with
`num_proc` workers (each row's notes travel with it as columns), and the global steps work on compact
numpy columns (64-bit keys, MinHash signatures) memory-mapped from Arrow, so the corpus is never held
twice in memory. A final pass in input order writes `train/val/test.jsonl`, `quarantine.jsonl` (every
rejected or changed row with file:line, stage and reason) and `data_report.json`:

    funnel      read, rejected{stage: n}, changed{stage: n}, usable, train, val, test, held_out, upsampled
    stages      [{stage, in, out, rejected, changed}] in pipeline order (read, clean, filter, pii, dedup,
                near_dedup, balance, split)
    reasons     {"rejected:<stage>" | "changed:<stage>": {reason: n}}
    histograms  {prompt_chars | answer_chars | tokens: {edges, counts}}: counts[i] counts values in
                [edges[i], edges[i+1]), the last bucket is open-ended
    languages   {zh | en | other: n} of the usable records
    pii         {enabled, strategy, types, by_type: {TYPE: n}, records_masked}
    duplicates  {exact, near, clusters, candidate_pairs, verified_pairs, threshold, bands, rows,
                 largest_clusters: [{size, kept, members, min_similarity}]}
    split       {stratify_by, strata: {label: {train, val, test}}, capped, upsampled}
    sources, splits (sha256 of inputs and outputs), seed, token_counter, num_proc, timings, quarantine_examples
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from r1tune.artifacts import DATA_REPORT_FILE, DataReport, read_artifact, write_artifact
from r1tune.config import DataConfig, SourceConfig
from r1tune.data.chunking import tokenizer_counter
from r1tune.data.clean import RecordCleaner, record_text
from r1tune.data.data_warnings import data_warnings
from r1tune.data.global_steps import column, dedup_parts, exact_dedup, near_clusters, near_dedup, quality_step
from r1tune.data.label_studio import sources_agreement
from r1tune.data.quarantine import Quarantine

if TYPE_CHECKING:
    from r1tune.data.quality import AnswerScorer
from r1tune.data.readers import read_source
from r1tune.data.records import Record, read_jsonl
from r1tune.data.split import CAPPED, SPLIT_NAMES, TEST, TRAIN, plan_split
from r1tune.errors import DataError

log = logging.getLogger(__name__)
SPLITS = SPLIT_NAMES
HISTOGRAM_EDGES = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
PARALLEL_FROM = 20_000  # below this many records one process is faster than starting workers
_BATCH = 1000


@dataclass
class PreparedData:
    train: list[Record]
    val: list[Record]
    test: list[Record]
    report: DataReport | None  # None for a folder prepared by hand (no data_report.json)
    folder: Path


def prepare(cfg: DataConfig, out_dir: Path, seed: int, tokenizer=None, show_progress: bool = False,
            answer_scorer: AnswerScorer | None = None) -> PreparedData:
    """Run the data stage for one config section, write its outputs to `out_dir` and load the splits.

    `tokenizer` (the model's) sizes document chunks and the token histogram; without it both use an estimate.
    `answer_scorer` (the base model's answer NLL) feeds `clean.quality.use_perplexity`.
    """
    run_data_pipeline(cfg, out_dir, seed, tokenizer, show_progress, answer_scorer)
    return load_prepared(out_dir)


def load_prepared(folder: Path) -> PreparedData:
    """Reload the splits a previous `prepare` wrote."""
    if not (folder / "train.jsonl").is_file():
        raise DataError(f"{folder} holds no prepared data (train.jsonl missing)", hint="run `r1tune prepare` first")
    splits = {name: list(read_jsonl(folder / f"{name}.jsonl")) for name in SPLITS}
    report_path = folder / DATA_REPORT_FILE
    report = read_artifact(report_path, DataReport) if report_path.is_file() else None
    return PreparedData(splits["train"], splits["val"], splits["test"], report, folder)


def split_records(
    records: list[Record], val_ratio: float, test_ratio: float, seed: int
) -> tuple[list[Record], list[Record], list[Record]]:
    """Deterministic split of in-memory records (no clusters, no strata); order-independent, seeded."""
    n = len(records)
    ids = [r.id for r in records]
    plan = plan_split(ids, np.arange(n), [""] * n, np.ones(n, bool), np.zeros(n, bool), val_ratio, test_ratio, seed)
    parts: list[list[Record]] = [[], [], []]
    order = sorted(range(n), key=lambda i: (hashlib.sha256(f"{seed}:{ids[i]}".encode()).digest(), ids[i]))
    for i in order:
        parts[plan.assignment[i]].append(records[i])
    return parts[0], parts[1], parts[2]


# ---------------------------------------------------------------------------------------------------------
# the pipeline


def run_data_pipeline(cfg: DataConfig, out_dir: Path, seed: int, tokenizer=None, show_progress: bool = False,
                      answer_scorer: AnswerScorer | None = None) -> dict[str, Any]:
    """Everything `prepare` does except loading the splits back (the benchmark's entry point)."""
    import datasets

    if not show_progress:
        datasets.disable_progress_bars()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers are forked after the tokenizer loads
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".arrow-", dir=out_dir))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    count_tokens = tokenizer_counter(tokenizer) if tokenizer is not None else None
    try:
        with (out_dir / "quarantine.jsonl").open("w", encoding="utf-8") as sink:
            quarantine = Quarantine(sink=sink)
            t0 = time.perf_counter()
            arrow_path = work / "read.arrow"
            n_rows, source_counts = _read_to_arrow(cfg, quarantine, arrow_path, count_tokens)
            timings["read"] = time.perf_counter() - t0
            if not source_counts["__train__"]:
                sink.flush()
                _raise_nothing_usable(cfg.sources, quarantine)
            dataset = datasets.Dataset.from_file(str(arrow_path))
            num_proc = cfg.num_proc or (min(os.cpu_count() or 1, 8) if n_rows >= PARALLEL_FROM else 1)
            t0 = time.perf_counter()
            dataset = _clean(dataset, cfg, work, num_proc, count_tokens)
            timings["clean_filter_pii"] = time.perf_counter() - t0
            report = _finish(dataset, cfg, out_dir, seed, quarantine, timings, answer_scorer)
        report["funnel"]["read"] = n_rows + report["funnel"]["rejected"].get("read", 0)
        report["annotation"] = sources_agreement([*cfg.sources, *cfg.test_sources])
        report["warnings"] = data_warnings(report, cfg.warn_drop_share)
        for warning in report["warnings"]:
            log.warning("data: %s", warning)
        report["sources"] = {
            str(p): {"records": n, "sha256": file_sha256(p)} for p, n in source_counts.items() if isinstance(p, Path)
        }
        report["splits"] = {name: file_sha256(out_dir / f"{name}.jsonl") for name in SPLITS}
        report.update(seed=seed, num_proc=num_proc, token_counter="tokenizer" if tokenizer is not None else "approx")
        timings["total"] = time.perf_counter() - started
        report["timings"] = {k: round(v, 3) for k, v in timings.items()}
        report["records_per_second"] = round(n_rows / timings["total"], 1) if timings["total"] else None
        write_artifact(out_dir / DATA_REPORT_FILE, DataReport.model_validate(report))  # the file's one writer
        for item in quarantine.examples[:5]:
            log.warning("quarantined %s (%s): %s", item.source, item.stage, item.reason)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _read_to_arrow(cfg: DataConfig, quarantine: Quarantine, path: Path, count_tokens) -> tuple[int, dict]:
    """Stream every source's records into one Arrow file: (record JSON, source, held_out)."""
    import pyarrow as pa

    schema = pa.schema([("record", pa.large_string()), ("source", pa.string()), ("held_out", pa.bool_())])
    counts: dict[Any, int] = {"__train__": 0, "__held_out__": 0}
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        buffer: dict[str, list] = {"record": [], "source": [], "held_out": []}

        def flush() -> None:
            if buffer["record"]:
                writer.write_batch(pa.record_batch(buffer, schema=schema))
                for values in buffer.values():
                    values.clear()

        for held_out, record, source_path in _all_records(cfg, quarantine, count_tokens):
            buffer["record"].append(json.dumps(record.to_dict(), ensure_ascii=False))
            buffer["source"].append(record.source)
            buffer["held_out"].append(held_out)
            counts[source_path] = counts.get(source_path, 0) + 1
            counts["__held_out__" if held_out else "__train__"] += 1
            rows += 1
            if len(buffer["record"]) >= 10_000:
                flush()
        flush()
    return rows, counts


def _all_records(cfg: DataConfig, quarantine: Quarantine, count_tokens) -> Iterator[tuple[bool, Record, Path]]:
    taken = 0
    for source in cfg.sources:
        for record in read_source(source, quarantine, count_tokens, cfg.chunking):
            if cfg.max_records is not None and taken >= cfg.max_records:
                break
            taken += 1
            yield False, record, source.path
    for source in cfg.test_sources:
        for record in read_source(source, quarantine, count_tokens, cfg.chunking):
            yield True, record, source.path


# ---------------------------------------------------------------------------------------------------------
# per-record steps (parallel)


def record_cleaner(cfg: DataConfig) -> RecordCleaner:
    """The per-record steps of `cfg` (clean, filter, mask PII), as `prepare` and `show-sample` apply them."""
    salt = os.environ.get(cfg.pii.salt_env, "")
    if not salt and cfg.pii.strategy == "pseudonym":
        salt = secrets.token_hex(16)  # one per run: workers must agree on the fakes
    return RecordCleaner(cfg.clean.steps, cfg.clean, cfg.pii, salt)


def _clean(dataset, cfg: DataConfig, work: Path, num_proc: int, count_tokens):
    cleaner = record_cleaner(cfg)
    hasher = None
    if "near_dedup" in cfg.clean.steps and cfg.clean.near_dup_method == "minhash":
        from r1tune.data.dedup import MinHasher

        hasher = MinHasher(cfg.clean.num_perm, cfg.clean.char_shingle, cfg.clean.word_shingle)
    return dataset.map(
        _clean_batch,
        batched=True,
        batch_size=_BATCH,
        num_proc=num_proc if num_proc > 1 else None,
        fn_kwargs={"cleaner": cleaner, "hasher": hasher, "stratify_by": cfg.split.stratify_by,
                   "count_tokens": count_tokens, "near_dup_on": cfg.clean.near_dup_on},
        cache_file_name=str(work / "clean.arrow"),
        load_from_cache_file=False,
        new_fingerprint=secrets.token_hex(8),
        desc="clean, filter, mask",
    )


def record_id(messages: list[dict[str, Any]]) -> str:
    """`Record.content_hash()[:16]` computed on the dict form, without building a Record (hot loop)."""
    payload = json.dumps(messages, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def quick_tokens(text: str) -> int:
    """A cheaper `approx_tokens` for the histogram: non-ASCII characters + 1.3 per ASCII word."""
    ascii_part = text.encode("ascii", "ignore")
    return len(text) - len(ascii_part) + (13 * len(ascii_part.split()) + 9) // 10


def _clean_batch(batch: dict[str, list], cleaner: RecordCleaner, hasher, stratify_by: str | None,
                 count_tokens, near_dup_on: str = "both") -> dict[str, list]:
    from r1tune.data.dedup import exact_key

    out: dict[str, list] = {k: [] for k in ("record", "ok", "issues", "key", "sig", "sig2", "lang", "pii", "id",
                                            "label", "prompt_chars", "answer_chars", "tokens")}
    shingles: list[list[np.ndarray]] = [[], []]
    for raw in batch["record"]:
        record = json.loads(raw)
        result = cleaner.clean(record)
        issues = list(result.issues)
        cleaned = result.record
        if cleaned is not None:
            cleaned["id"] = record_id(cleaned["messages"])
        out["issues"].append(json.dumps(issues, ensure_ascii=False) if issues else "")
        out["ok"].append(cleaned is not None)
        if cleaned is None:
            out["record"].append(raw)
            for key, empty in (("key", 0), ("lang", ""), ("pii", ""), ("id", ""), ("label", ""),
                               ("prompt_chars", 0), ("answer_chars", 0), ("tokens", 0)):
                out[key].append(empty)
            for part in shingles:
                part.append(np.empty(0, dtype=np.uint32))
            continue
        text = record_text(cleaned)
        answer = cleaned["messages"][-1]["content"]
        out["record"].append(json.dumps(cleaned, ensure_ascii=False))
        out["key"].append(exact_key(text))
        out["lang"].append(result.lang)
        out["pii"].append(json.dumps(dict(result.pii)) if result.pii else "")
        out["id"].append(cleaned["id"])
        label = (cleaned.get("meta") or {}).get(stratify_by) if stratify_by else None
        out["label"].append("" if label is None else str(label))
        out["prompt_chars"].append(len(text) - len(answer))
        out["answer_chars"].append(len(answer))
        out["tokens"].append(count_tokens(text) if count_tokens else quick_tokens(text))
        if hasher is not None:
            parts = dedup_parts(cleaned, near_dup_on)
            for i, part in enumerate(shingles):
                part.append(hasher.shingle_hashes(parts[i], result.lang) if i < len(parts) else np.empty(0, np.uint32))
    for name, part in zip(("sig", "sig2"), shingles, strict=True):
        wanted = hasher is not None and (name == "sig" or near_dup_on == "both")
        out[name] = [row.tobytes() for row in hasher.signatures(part)] if wanted else [b""] * len(out["record"])
    return out


# ---------------------------------------------------------------------------------------------------------
# global steps and the final write (parent process)


def _finish(dataset, cfg: DataConfig, out_dir: Path, seed: int, quarantine: Quarantine,
            timings: dict[str, float], answer_scorer: AnswerScorer | None = None) -> dict[str, Any]:
    n = len(dataset)
    ok = column(dataset, "ok").astype(bool)
    held_out = column(dataset, "held_out").astype(bool)
    sources = dataset.data.column("source").combine_chunks()
    drop_reason: dict[int, tuple[str, str]] = {}
    duplicates: dict[str, Any] = {"exact": 0, "near": 0, "clusters": 0}
    t0 = time.perf_counter()
    active = ok.copy()
    if "exact_dedup" in cfg.clean.steps:
        exact_dedup(column(dataset, "key"), active, held_out, sources, drop_reason, duplicates)
    timings["exact_dedup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    units = np.arange(n)
    if "near_dedup" in cfg.clean.steps:
        units = near_dedup(near_clusters(dataset, cfg, active), cfg, active, held_out, sources, drop_reason,
                            duplicates)
    timings["near_dedup"] = time.perf_counter() - t0
    quality = None
    if cfg.clean.quality.enabled:
        t0 = time.perf_counter()
        quality = quality_step(dataset, cfg, active, held_out, drop_reason, answer_scorer)
        timings["quality"] = time.perf_counter() - t0
    ids = dataset.data.column("id").to_pylist()
    labels = dataset.data.column("label").to_pylist()
    plan = plan_split(ids, units, labels, active, held_out, cfg.val_ratio, cfg.test_ratio, seed,
                      cfg.split.max_per_class, cfg.split.min_per_class)
    for row in np.flatnonzero(plan.assignment == CAPPED):
        drop_reason[int(row)] = ("balance", f"class {labels[row]!r} capped at {cfg.split.max_per_class} records")
    t0 = time.perf_counter()
    stats = _write(dataset, out_dir, plan, quarantine, drop_reason)  # also when failing: the quarantine explains
    timings["write"] = time.perf_counter() - t0
    if not (plan.assignment == TRAIN).any():
        usable = int((plan.assignment >= 0).sum())
        if not usable:
            _raise_nothing_usable(cfg.sources, quarantine)
        raise DataError(f"only {usable} usable record(s): nothing left for training after the split")
    return {**_report(cfg, dataset, plan, quarantine, stats, duplicates, ok, held_out), "quality": quality}


def _write(dataset, out_dir: Path, plan, quarantine: Quarantine, drop_reason: dict[int, tuple[str, str]]
           ) -> dict[str, Any]:
    """One pass in input order: split files, quarantine notes, and the numbers the report needs."""
    files = {name: (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") for name in SPLITS}
    pii: Counter = Counter()
    stats: dict[str, Any] = {"written": Counter(), "pii": pii, "records_masked": 0, "languages": Counter()}
    hist_rows: list[int] = []
    columns = ["record", "source", "issues", "pii", "lang"]
    try:
        row = 0
        for batch in dataset.select_columns(columns).iter(batch_size=10_000):
            for record, source, issues, pii_json, lang in zip(*(batch[c] for c in columns), strict=True):
                _note_issues(quarantine, source, issues, record)
                split = plan.assignment[row]
                if row in drop_reason:
                    stage, reason = drop_reason[row]
                    quarantine.add(source, stage, reason)
                elif split >= 0:
                    files[SPLITS[split]].write(record + "\n")
                    stats["written"][SPLITS[split]] += 1
                    if split == TRAIN:
                        for _ in range(plan.copies[row]):
                            files["train"].write(record + "\n")
                        stats["written"]["train"] += int(plan.copies[row])
                    if pii_json:
                        pii.update(json.loads(pii_json))
                        stats["records_masked"] += 1
                    stats["languages"][lang] += 1
                    hist_rows.append(row)
                row += 1
    finally:
        for fh in files.values():
            fh.close()
    stats["kept_rows"] = np.array(hist_rows, dtype=np.int64)
    return stats


def _note_issues(quarantine: Quarantine, source: str, issues: str, record: str) -> None:
    if not issues:
        return
    for stage, reason, action in json.loads(issues):
        row = json.loads(record) if action == "rejected" else None
        quarantine.add(source, stage, reason, row, action=action)


def histogram(values: np.ndarray) -> dict[str, list[int]]:
    """Counts per bucket [edges[i], edges[i+1]), the last bucket open-ended."""
    index = np.searchsorted(HISTOGRAM_EDGES, values, side="right") - 1
    counts = np.bincount(index, minlength=len(HISTOGRAM_EDGES))[: len(HISTOGRAM_EDGES)]
    return {"edges": list(HISTOGRAM_EDGES), "counts": [int(c) for c in counts]}


def _report(cfg: DataConfig, dataset, plan, quarantine: Quarantine, stats: dict[str, Any], duplicates: dict,
            ok: np.ndarray, held_out: np.ndarray) -> dict[str, Any]:
    rejected, changed = quarantine.counts(), quarantine.changed_counts()
    written = stats["written"]
    kept = stats["kept_rows"]
    n_in = len(dataset)
    stages = [{"stage": "read", "in": n_in + rejected.get("read", 0), "out": n_in, "rejected": rejected.get("read", 0)}]
    remaining = n_in
    for stage in ("clean", "filter", "pii", "placeholders", "dedup", "near_dedup", "quality", "balance"):
        out = remaining - rejected.get(stage, 0)
        stages.append({"stage": stage, "in": remaining, "out": out, "rejected": rejected.get(stage, 0),
                       "changed": changed.get(stage, 0)})
        remaining = out
    stages.append({"stage": "split", "in": remaining, "train": written["train"], "val": written["val"],
                   "test": written["test"], "upsampled": plan.upsampled})
    report = {
        "funnel": {
            "read": n_in,
            "rejected": rejected,
            "changed": changed,
            "usable": int((plan.assignment >= 0).sum()),
            **{name: written[name] for name in SPLITS},
            "held_out": int((held_out & (plan.assignment == TEST)).sum()),
            "upsampled": plan.upsampled,
            "flagged": quarantine.flagged_counts(),
        },
        "stages": stages,
        "reasons": quarantine.reason_counts(),
        "histograms": {
            "prompt_chars": histogram(column(dataset, "prompt_chars")[kept]),
            "answer_chars": histogram(column(dataset, "answer_chars")[kept]),
            "tokens": histogram(column(dataset, "tokens")[kept]),
        },
        "languages": dict(stats["languages"]),
        "pii": {"enabled": cfg.pii.enabled and "pii" in cfg.clean.steps, "strategy": cfg.pii.strategy,
                "types": cfg.pii.types, "by_type": dict(stats["pii"]), "records_masked": stats["records_masked"]},
        "duplicates": duplicates,
        "split": {"stratify_by": cfg.split.stratify_by, "strata": plan.strata, "capped": plan.capped,
                  "upsampled": plan.upsampled, "notes": plan.notes},
        "quarantine_examples": [f"{i.source} ({i.stage}): {i.reason}" for i in quarantine.examples[:10]],
    }
    return report


def _raise_nothing_usable(sources: list[SourceConfig], quarantine: Quarantine) -> None:
    examples = "; ".join(f"{i.source}: {i.reason}" for i in quarantine.examples[:3])
    names = ", ".join(str(s.path) for s in sources)
    raise DataError(f"no usable records in {names}" + (f" (e.g. {examples})" if examples else " (empty files?)"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
