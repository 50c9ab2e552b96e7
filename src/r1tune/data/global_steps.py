"""The global steps of `prepare`, run in the parent process over the whole cleaned dataset: exact and near
deduplication (MinHash or embeddings) and the learned quality filter. Each marks dropped rows in
`drop_reason` (row -> (stage, reason)) and clears them from `active`; `prepare` writes the quarantine."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from r1tune.config import DataConfig
from r1tune.data.clean import record_text

if TYPE_CHECKING:
    from r1tune.data.quality import AnswerScorer


def dedup_parts(record: dict[str, Any], near_dup_on: str) -> tuple[str, ...]:
    """The texts near-dedup compares: (prompt, answer) for `both`, else the one part."""
    *history, answer = record["messages"]
    prompt = record_text({"messages": history})
    answer_text = record_text({"messages": [answer]})
    return {"both": (prompt, answer_text), "prompt": (prompt,), "answer": (answer_text,)}[near_dup_on]


def column(dataset, name: str) -> np.ndarray:
    return dataset.data.column(name).to_numpy()


def signatures(dataset, num_perm: int, column: str = "sig") -> np.ndarray:
    """A signature column as an (n, num_perm) uint32 matrix, built chunk by chunk from the Arrow buffers."""
    width = num_perm * 4
    parts = []
    for chunk in dataset.data.column(column).chunks:
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset:chunk.offset + len(chunk) + 1]
        if not np.all(np.diff(offsets) == width):
            raise AssertionError("every row carries a full signature")  # written by _clean_batch
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        parts.append(data.view(np.uint32).reshape(len(chunk), num_perm))
    return np.concatenate(parts) if parts else np.empty((0, num_perm), dtype=np.uint32)


def quality_step(dataset, cfg: DataConfig, active: np.ndarray, held_out: np.ndarray, drop_reason,
             scorer: AnswerScorer | None) -> dict:
    """Run the learned quality filter on the training pool; its drops join the others in the quarantine."""
    from r1tune.data.quality import quality_filter, records_of

    rows = np.flatnonzero(active & ~held_out)
    reasons, summary = quality_filter(records_of(dataset, rows), cfg.clean.quality, scorer)
    for row, reason in zip(rows.tolist(), reasons, strict=True):
        if reason is not None:
            drop_reason[row] = ("quality", reason)
            active[row] = False
    return summary


def exact_dedup(keys: np.ndarray, active: np.ndarray, held_out: np.ndarray, sources, drop_reason, duplicates) -> None:
    """Keep the first occurrence of each normalised text (training rows come before held-out ones)."""
    rows = np.flatnonzero(active)
    _, first, inverse = np.unique(keys[rows], return_index=True, return_inverse=True)
    original = rows[first[inverse]]
    for row in rows[original != rows]:
        first_row = int(original[np.searchsorted(rows, row)])
        kept = sources[first_row].as_py()
        if held_out[row] and not held_out[first_row]:
            drop_reason[int(row)] = ("dedup", f"test record also in training data ({kept})")
        else:
            drop_reason[int(row)] = ("dedup", f"exact duplicate of {kept}")
        active[row] = False
        duplicates["exact"] += 1


def near_clusters(dataset, cfg: DataConfig, active: np.ndarray):
    """Near-duplicate clusters by shingle MinHash, or by sentence embeddings (`near_dup_method`)."""
    from r1tune.data.dedup import near_duplicate_clusters, semantic_clusters

    clean = cfg.clean
    if clean.near_dup_method == "minhash":
        answers = signatures(dataset, clean.num_perm, "sig2") if clean.near_dup_on == "both" else None
        return near_duplicate_clusters(signatures(dataset, clean.num_perm), clean.near_dup_threshold, active,
                                       also=answers)
    from r1tune.data.embeddings import embed
    from r1tune.data.quality import records_of

    rows = np.flatnonzero(active)
    parts = [dedup_parts(r, clean.near_dup_on) for r in records_of(dataset, rows)]
    matrices = []
    for i in range(len(parts[0]) if parts else 1):
        full = np.zeros((len(active), 384), dtype=np.float32)
        full[rows] = embed([p[i] for p in parts]) if parts else full[rows]
        matrices.append(full)
    return semantic_clusters(matrices[0], clean.semantic_threshold, active,
                             also=matrices[1] if len(matrices) > 1 else None)


def near_dedup(result, cfg: DataConfig, active: np.ndarray, held_out: np.ndarray, sources, drop_reason,
                duplicates) -> np.ndarray:
    from r1tune.data.dedup import lsh_params

    semantic = cfg.clean.near_dup_method == "embedding"
    threshold = cfg.clean.semantic_threshold if semantic else cfg.clean.near_dup_threshold
    cluster = result.cluster
    members = np.flatnonzero(active & (cluster != np.arange(len(cluster))))
    sizes = Counter(cluster[np.flatnonzero(active)].tolist())
    for row in members:
        rep = int(cluster[row])
        similarity = float(result.similarity[row])
        kept = sources[rep].as_py()
        if held_out[row] and not held_out[rep]:
            drop_reason[int(row)] = ("near_dedup", f"test record near-duplicates training record {kept} "
                                                   f"(similarity {similarity:.2f})")
        elif cfg.clean.near_dup_action == "drop":
            drop_reason[int(row)] = ("near_dedup", f"near duplicate of {kept} (similarity {similarity:.2f}, "
                                                   f"cluster of {sizes[rep]})")
        else:
            continue
        active[row] = False
        duplicates["near"] += 1
    bands, rows = (0, 0) if semantic else lsh_params(threshold, cfg.clean.num_perm)
    big = [rep for rep, size in sizes.most_common(10) if size > 1]
    duplicates.update(
        clusters=sum(1 for size in sizes.values() if size > 1), candidate_pairs=result.candidate_pairs,
        verified_pairs=result.verified_pairs, threshold=threshold, bands=bands, rows=rows,
        action=cfg.clean.near_dup_action, compared=cfg.clean.near_dup_on, method=cfg.clean.near_dup_method,
        largest_clusters=describe_clusters(big, cluster, result, sizes, sources),
    )
    return cluster


def describe_clusters(reps: list[int], cluster: np.ndarray, result, sizes: Counter, sources) -> list[dict]:
    out = []
    for rep in reps:
        members = np.flatnonzero(cluster == rep)
        others = [int(m) for m in members if m != rep]
        out.append({
            "size": sizes[rep], "kept": sources[rep].as_py(),
            "members": [sources[m].as_py() for m in others[:5]],
            "min_similarity": round(float(result.similarity[others].min()), 3) if others else 1.0,
        })
    return out
