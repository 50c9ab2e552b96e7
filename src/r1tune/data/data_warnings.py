"""Warnings a user cannot miss: what `prepare` did that probably is not what they wanted.

Computed once from the finished data report, stored in `data_report.json` (`warnings`), printed by
`prepare`/`run` and shown at the top of the report's data section:

- a stage dropped more than `data.warn_drop_share` of what reached it (with the largest near-duplicate
  clusters when it was near-dedup, so the user sees what was merged);
- a class of the stratification key has no training record (the model would be tested on an intent it
  never saw), or a class could not get a test record (its records form one near-duplicate cluster);
- held-out test records near-duplicated training records (they were removed: the test set shrank);
- records kept but flagged: unfilled template placeholders, preference pairs whose `rejected` answer no
  training method uses yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOW_AGREEMENT = 0.667  # Krippendorff's lower bound for drawing even tentative conclusions from annotations


def data_warnings(report: dict[str, Any], drop_share: float) -> list[str]:
    """The warnings of a finished `prepare` report (the dict `_report` builds, with `annotation`)."""
    out = [*_drops(report, drop_share), *_classes(report), *report["split"].get("notes", []), *_flagged(report),
           *_low_agreement(report.get("annotation") or {})]
    reasons = report.get("reasons", {})  # {"rejected:<stage>": {reason kind: n}} (Quarantine.reason_counts)
    leaks = sum(n for stage in ("rejected:dedup", "rejected:near_dedup") for reason, n in (reasons.get(stage) or {}).items()
                if reason.startswith(("test record near-duplicates", "test record also in training data")))
    if leaks:
        out.append(f"{leaks} held-out test record(s) near-duplicated training records and were removed from "
                   "the test split (see quarantine.jsonl)")
    return out


def _drops(report: dict[str, Any], drop_share: float) -> list[str]:
    out = []
    for stage in report["stages"]:
        seen, dropped = stage.get("in", 0), stage.get("rejected", 0)
        if seen and dropped / seen > drop_share:
            text = (f"stage {stage['stage']} dropped {100 * dropped / seen:.0f}% of its records ({dropped} of "
                    f"{seen}; warning above {100 * drop_share:.0f}%, `data.warn_drop_share`)")
            if stage["stage"] == "near_dedup":
                text += ": " + _clusters(report["duplicates"].get("largest_clusters") or [])
            out.append(text)
    return out


_FLAG_TEXT = {
    "placeholders": "record(s) contain unfilled template placeholders such as {{name}} (reasons in "
                    "quarantine.jsonl); fill them with `clean.terms` or set `clean.placeholders: quarantine`",
    "preference": "record(s) are preference pairs: under train.stage: sft (the default) only the `chosen` "
                  "answer trains; train.stage: dpo or kto uses the `rejected` one too",
}


def _flagged(report: dict[str, Any]) -> list[str]:
    return [f"{n} {_FLAG_TEXT.get(stage, f'record(s) flagged at {stage}')}"
            for stage, n in report["funnel"].get("flagged", {}).items()]


def _low_agreement(agreement: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    return [f"annotators of {Path(path).name} agree little on {field}: Krippendorff's alpha {row['krippendorff_alpha']:.2f} "
            f"over {row['tasks']} tasks (below {LOW_AGREEMENT}); review the guideline or set source.min_agreement"
            for path, fields in agreement.items() for field, row in fields.items()
            if row["krippendorff_alpha"] == row["krippendorff_alpha"] and row["krippendorff_alpha"] < LOW_AGREEMENT]


def _clusters(clusters: list[dict[str, Any]]) -> str:
    shown = [f"{c['size']} records like {c['kept']} (lowest similarity {c['min_similarity']:.2f})"
             for c in clusters[:3]]
    return "largest clusters " + "; ".join(shown) if shown else "no cluster detail"


def _classes(report: dict[str, Any]) -> list[str]:
    key = report["split"].get("stratify_by")
    if not key:
        return []
    return [f"class {label!r} of `{key}` has no training record ({counts['val']} val, {counts['test']} test)"
            for label, counts in report["split"].get("strata", {}).items() if not counts.get("train")]
