"""The test set as evaluation sees it: which records can be scored (and why the others cannot), their
rendered prompts, and the eval inputs that must be usable before any training starts (schema, probes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1tune.config import EvalConfig
from r1tune.data.records import Record
from r1tune.errors import ConfigError, R1TuneError
from r1tune.models import LoadedModel


@dataclass
class TestSet:
    """The scorable test records and everything derived from them once (prompts, rendered answers)."""

    records: list[Record]
    prompts: list[list[int]]
    references: list[str]
    skipped: list[dict[str, str]]


# ---------------------------------------------------------------------------------------------------------
# Inputs


def load_schema(value: dict | Path | None) -> tuple[dict | None, str | None]:
    """(schema, None), or (None, reason) when the configured schema cannot be used; never raises."""
    from jsonschema import SchemaError
    from jsonschema.validators import Draft202012Validator, validator_for

    if value is None:
        return None, None
    schema: Any = value
    if isinstance(value, Path):
        if not value.is_file():
            return None, f"eval.json_schema: file {value} does not exist"
        try:
            schema = json.loads(value.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            detail = f"{err.msg} (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) \
                else str(err)
            return None, f"eval.json_schema: {value} is not valid JSON: {detail}"
    if not isinstance(schema, dict):
        return None, f"eval.json_schema: a schema must be a JSON object, got {type(schema).__name__}"
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as err:
        return None, f"eval.json_schema is not a valid JSON Schema: {err.message} (at {err.json_path})"
    return schema, None


def check_eval_config(cfg: EvalConfig) -> None:
    """Fail before any training when eval inputs are unusable (schema, probe files), naming the problem."""
    from r1tune.eval.redteam import load_probes
    from r1tune.models.device import choose_engine, current_plan

    choose_engine(cfg.engine, current_plan().device)
    _, error = load_schema(cfg.json_schema)
    if error:
        raise ConfigError(error, hint="fix the schema file or remove eval.json_schema")
    if cfg.redteam or cfg.redteam_file:
        load_probes(cfg.redteam, cfg.redteam_file)


def _unscorable(record: Record) -> str | None:
    """Why a test record cannot be scored, or None."""
    if not record.answer.content.strip():
        return "empty reference answer"
    listed = record.meta.get("key_facts")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(f, str) for f in listed)):
        return f"meta.key_facts must be a list of strings, got {json.dumps(listed, ensure_ascii=False)[:80]}"
    return None


def scorable_test_set(loaded: LoadedModel, records: Sequence[Record], max_examples: int | None) -> TestSet:
    kept, skipped = [], []
    for record in records:
        problem = _unscorable(record)
        if problem:
            skipped.append({"id": record.id, "source": record.source, "reason": problem})
        else:
            kept.append(record)
    if max_examples:
        kept = kept[:max_examples]
    if not kept:
        why = f" ({len(skipped)} record(s) have an empty reference answer)" if skipped else ""
        raise R1TuneError(f"the test split is empty: nothing to evaluate{why}",
                          hint="check data.test_ratio / data.test_sources and that test answers are not blank")
    prompts = [loaded.renderer.render_prompt(r.prompt_messages) for r in kept]
    return TestSet(kept, prompts, [r.answer.content for r in kept], skipped)

