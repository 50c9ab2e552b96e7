"""Label Studio round trip: tasks out (with r1tune's answer as a prediction to correct), annotations in.

Import keeps every annotator's work instead of the last annotation. Per task and field:
- Choices (intent, quality...): the majority value goes into `meta`; agreement is the share of annotators
  who chose it.
- Text (the answer): an annotation flagged `ground_truth` (Label Studio's adjudication) wins; otherwise the
  medoid, the text most similar to the others; agreement is their mean pairwise similarity (characters,
  so it works for Chinese).
A task's agreement is its lowest field agreement (`meta.agreement`); with `min_agreement` on the source,
tasks below it are quarantined, naming the field and what the annotators said. `annotation_agreement`
gives the dataset view: Fleiss' kappa (Cohen's for two annotators) per choices field and Krippendorff's
alpha per text field, over the tasks each field was annotated on by two or more people.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from difflib import SequenceMatcher
from itertools import combinations
from pathlib import Path
from typing import Any

from r1tune.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha, majority
from r1tune.data.records import Message, Record
from r1tune.errors import DataError

Annotation = dict[str, str]  # from_name -> value (choices joined with ", ", text lines joined with "\n")


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def annotations(row: dict, where: str) -> tuple[list[Annotation], set[str], int | None]:
    """(every uncancelled annotation as field values, the text fields, the index of a ground-truth one).
    Predictions count only when nobody annotated the task."""
    for key in ("annotations", "completions", "predictions"):
        usable = [a for a in row.get(key) or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if usable:
            break
    else:
        raise DataError(f"{where}: Label Studio task has no (uncancelled) annotation")
    out, text_fields, truth = [], set(), None
    for index, annotation in enumerate(usable):
        values: Annotation = {}
        for result in annotation.get("result") or []:
            value = result.get("value") if isinstance(result, dict) else None
            if not isinstance(value, dict) or result.get("from_name", "") in values:
                continue
            name = result.get("from_name", "")
            choices = value.get("choices") or value.get("taxonomy")
            if choices:
                values[name] = ", ".join(str(c if not isinstance(c, list) else "/".join(c)) for c in choices)
            elif "text" in value:
                text = value["text"]
                values[name] = "\n".join(text) if isinstance(text, list) else str(text)
                text_fields.add(name)
        out.append(values)
        if annotation.get("ground_truth") and truth is None:
            truth = index
    return out, text_fields, truth


def _medoid(texts: list[str]) -> str:
    if len(texts) <= 2:
        return texts[0]
    return max(texts, key=lambda t: sum(similarity(t, other) for other in texts))


def adjudicate(found: list[Annotation], text_fields: set[str], truth: int | None
               ) -> tuple[dict[str, str], dict[str, float]]:
    """(one value per field, agreement per field annotated by two or more)."""
    fields = dict.fromkeys(name for a in found for name in a)
    decided, agreement = {}, {}
    for name in fields:
        values = [a[name] for a in found if name in a]
        if truth is not None and name in found[truth]:
            decided[name] = found[truth][name]
        elif name in text_fields:
            decided[name] = _medoid(values)
        else:
            decided[name] = str(majority(values)[0])
        if len(values) >= 2:
            agreement[name] = (sum(similarity(a, b) for a, b in combinations(values, 2)) / (len(values) * (len(values) - 1) / 2)
                               if name in text_fields else majority(values)[1])
    return decided, agreement


def task_record(row: dict, where: str, target: str | None, prompt: str, min_agreement: float | None) -> Record:
    """One Label Studio task as a record: the adjudicated answer, choices as meta, every annotation kept."""
    found, text_fields, truth = annotations(row, where)
    decided, agreement = adjudicate(found, text_fields, truth)
    if min_agreement is not None and agreement:
        field, lowest = min(agreement.items(), key=lambda item: item[1])
        if lowest < min_agreement:
            said = " / ".join(repr(a.get(field, "")[:40]) for a in found)
            raise DataError(f"{where}: annotators disagree on {field}: {said} (agreement {lowest:.2f} < "
                            f"source.min_agreement {min_agreement:g})")
    answer_field = target or next((n for n in decided if n in text_fields), None)
    if answer_field is None or answer_field not in decided:
        raise DataError(f"{where}: annotation has no text answer" + (f" from {target!r}" if target else "")
                        + f"; found: {sorted(decided)}", hint="set target_column to the from_name of the answer control")
    meta: dict[str, Any] = {k: v for k, v in decided.items() if k != answer_field and k not in text_fields}
    if len(found) > 1:
        meta.update(annotators=len(found), annotations=found, agreement=round(min(agreement.values()), 3)
                    if agreement else 1.0)
    if "id" in row:
        meta["task_id"] = row["id"]
    return Record([Message("user", prompt), Message("assistant", decided[answer_field])], source=where, meta=meta)


def annotation_agreement(tasks: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Per field: kappa (choices) or Krippendorff's alpha (text) over tasks with two or more annotations."""
    per_field: dict[str, list[list[str]]] = {}
    text_fields: set[str] = set()
    for i, task in enumerate(tasks):
        try:
            found, texts, _ = annotations(task, f"task {i}")
        except DataError:
            continue
        text_fields |= texts
        for name in dict.fromkeys(n for a in found for n in a):
            values = [a[name] for a in found if name in a]
            if len(values) >= 2:
                per_field.setdefault(name, []).append(values)
    return {name: _field_agreement(units, name in text_fields) for name, units in per_field.items()}


def sources_agreement(sources: Sequence[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Agreement per field of every Label Studio source among `sources` (path -> field -> statistics)."""
    from r1tune.data.readers import label_studio_tasks

    out = {}
    for source in sources:
        tasks = label_studio_tasks(source)
        if tasks:
            fields = annotation_agreement(tasks)
            if fields:
                out[str(source.path)] = fields
    return out


def _field_agreement(units: list[list[str]], is_text: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"tasks": len(units), "kind": "text" if is_text else "choices"}
    if is_text:
        out["krippendorff_alpha"] = krippendorff_alpha(units, lambda a, b: 1 - similarity(a, b))
        return out
    out["krippendorff_alpha"] = krippendorff_alpha(units)
    categories = sorted({v for u in units for v in u})
    sizes = {len(u) for u in units}
    if sizes == {2}:
        out["cohen_kappa"] = cohen_kappa([u[0] for u in units], [u[1] for u in units], categories)
    elif len(sizes) == 1:
        out["fleiss_kappa"] = fleiss_kappa(units, categories)
    return out


def export_tasks(records: Sequence[Record], path: Path, model_version: str = "r1tune") -> Path:
    """Records as Label Studio tasks: the prompt in `data.prompt` (with `meta` fields beside it in
    `data.meta`), the current answer as a prediction an annotator corrects in a TextArea named `answer`."""
    tasks = []
    for record in records:
        result = [{"from_name": "answer", "to_name": "prompt", "type": "textarea",
                   "value": {"text": [record.answer.content]}}]
        tasks.append({"data": {"prompt": record.prompt_messages[-1].content if record.prompt_messages else "",
                               "meta": {**record.meta, "record_id": record.id}},
                      "predictions": [{"model_version": model_version, "result": result}]})
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
