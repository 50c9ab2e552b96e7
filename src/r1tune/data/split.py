"""Deterministic, stratified, cluster-safe train/val/test assignment with per-class caps and upsampling.

The unit of assignment is a near-duplicate cluster (a lone record is a cluster of one), so paraphrases
of one answer never sit on both sides of the train/test line. Units are ordered by a hash of (seed,
representative id), which makes the split independent of input order and different for each seed.
Per-stratum quotas use largest remainders, so the totals match `round(n * ratio)` as a plain split would,
and every class of three or more records has at least one validation and one test record. Clusters never
break stratification: a class always keeps training records (a cluster that would take its last ones
stays in training), and where a class cannot have both, the plan's `notes` say so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import xxhash

TRAIN, VAL, TEST = 0, 1, 2
UNASSIGNED, CAPPED = -1, -2
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class SplitPlan:
    assignment: np.ndarray  # per row: TRAIN/VAL/TEST, UNASSIGNED (inactive) or CAPPED
    copies: np.ndarray  # per row: extra copies written to train (upsampling)
    strata: dict[str, dict[str, int]] = field(default_factory=dict)
    capped: int = 0
    upsampled: int = 0
    notes: list[str] = field(default_factory=list)  # constraints that could not be met, per class


def unit_order_key(seed: int, unit_id: str) -> int:
    return xxhash.xxh64_intdigest(f"{seed}\x00{unit_id}".encode())


def plan_split(ids: list[str], units: np.ndarray, labels: list[str], active: np.ndarray, held_out: np.ndarray,
               val_ratio: float, test_ratio: float, seed: int, max_per_class: int | None = None,
               min_per_class: int | None = None) -> SplitPlan:
    """Assign every active row; held-out rows (test_sources) go to test and the test ratio is ignored."""
    n = len(ids)
    assignment = np.full(n, UNASSIGNED, dtype=np.int8)
    copies = np.zeros(n, dtype=np.int32)
    pool = active & ~held_out
    assignment[active & held_out] = TEST
    if held_out[active].any():
        test_ratio = 0.0
    by_unit: dict[int, list[int]] = defaultdict(list)
    for row in np.flatnonzero(pool):
        by_unit[int(units[row])].append(int(row))
    by_label: dict[str, list[int]] = defaultdict(list)
    for unit, rows in by_unit.items():
        by_label[labels[rows[0]]].append(unit)
    for label_units in by_label.values():
        label_units.sort(key=lambda u: unit_order_key(seed, ids[u]))
    plan = SplitPlan(assignment, copies)
    if max_per_class is not None:
        plan.capped = _cap(by_label, by_unit, assignment, max_per_class)
    sizes = {label: sum(len(by_unit[u]) for u in us) for label, us in by_label.items()}
    total = sum(sizes.values())
    n_test = _target(total, test_ratio)
    n_val = _target(total, val_ratio) if total - n_test > 1 else 0
    test_quota = _apportion(sizes, n_test)
    val_quota = _apportion(sizes, n_val)
    for label, label_units in by_label.items():
        counts = _assign_class(label_units, by_unit, assignment, test_quota[label], val_quota[label])
        if sizes[label] >= 3 and test_quota[label] and not counts[TEST]:
            plan.notes.append(f"class {label or '(no label)'!r}: its {sizes[label]} records are one near-duplicate "
                              "cluster, kept in training; it has no test record")
    if min_per_class is not None:
        plan.upsampled = _upsample(by_label, by_unit, assignment, copies, min_per_class)
    for row in np.flatnonzero(assignment >= 0):
        entry = plan.strata.setdefault(labels[row], {"train": 0, "val": 0, "test": 0})
        entry[SPLIT_NAMES[assignment[row]]] += 1 + (int(copies[row]) if assignment[row] == TRAIN else 0)
    return plan


def _assign_class(units: list[int], by_unit: dict[int, list[int]], assignment: np.ndarray, test_quota: int,
                  val_quota: int) -> list[int]:
    """Fill a class's test, then validation quota unit by unit; a unit that would overshoot a quota already
    begun, or take the class's last training rows, goes to training. Returns the rows per split."""
    counts = [0, 0, 0]
    remaining = sum(len(by_unit[u]) for u in units)
    for unit in units:
        size = len(by_unit[unit])
        remaining -= size
        keeps_training = remaining > 0 or counts[TRAIN] > 0
        split = TRAIN
        for held, quota in ((TEST, test_quota), (VAL, val_quota)):
            fits = counts[held] + size <= quota or counts[held] == 0
            if counts[held] < quota and fits and keeps_training:
                split = held
                break
        assignment[by_unit[unit]] = split
        counts[split] += size
    return counts


def _target(total: int, ratio: float) -> int:
    """round(total * ratio), but a non-zero ratio always yields at least one record when there are 3+."""
    if ratio <= 0 or total <= 2:
        return 0
    return max(1, round(total * ratio))


def _apportion(sizes: dict[str, int], target: int) -> dict[str, int]:
    """Share `target` over strata by size (largest remainders); every class of 3+ records gets at least one.

    Without the minimum a rare class (5 of 65 records) would get no test record at all and its quality
    would go unmeasured; the rest is shared in proportion to what each class is still owed.
    """
    total = sum(sizes.values())
    if not total or not target:
        return dict.fromkeys(sizes, 0)
    minimum = {label: 1 if size >= 3 else 0 for label, size in sizes.items()}
    if sum(minimum.values()) > target:
        minimum = dict.fromkeys(sizes, 0)
    rest = target - sum(minimum.values())
    owed = {label: max(0.0, size * target / total - minimum[label]) for label, size in sizes.items()}
    scale = rest / sum(owed.values()) if sum(owed.values()) else 0.0
    exact = {label: v * scale for label, v in owed.items()}
    quota = {label: math.floor(v) for label, v in exact.items()}
    leftover = rest - sum(quota.values())
    for label in sorted(exact, key=lambda lb: (-(exact[lb] - quota[lb]), str(lb)))[:leftover]:
        quota[label] += 1
    return {label: quota[label] + minimum[label] for label in sizes}


def _cap(by_label, by_unit, assignment, cap: int) -> int:
    capped = 0
    for label, units in by_label.items():
        kept, count = [], 0
        for unit in units:
            if count + len(by_unit[unit]) <= cap:
                kept.append(unit)
                count += len(by_unit[unit])
            else:
                assignment[by_unit[unit]] = CAPPED
                capped += len(by_unit[unit])
        by_label[label] = kept
    return capped


def _upsample(by_label, by_unit, assignment, copies, minimum: int) -> int:
    """Repeat a class's training rows round-robin (in seed order) until it has `minimum` training rows."""
    added = 0
    for units in by_label.values():
        rows = [r for u in units for r in by_unit[u] if assignment[r] == TRAIN]
        missing = minimum - len(rows)
        if not rows or missing <= 0:
            continue
        for i in range(missing):
            copies[rows[i % len(rows)]] += 1
        added += missing
    return added
