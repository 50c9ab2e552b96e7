"""Project files: read the YAML, apply command-line overrides, validate against the schema (`config.py`) and
explain every problem by file, line and key, or by the override it came from; and write the resolved
config that every run folder keeps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from r1tune.config import CONFIG_FILENAME, R1TuneConfig
from r1tune.errors import ConfigError


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> R1TuneConfig:
    """Read, override and validate a project file; raise ConfigError naming file, line, key and value."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", hint="create one with `r1tune init DIR`")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    overridden = apply_overrides(data, overrides)
    return validate_config(data, base_dir=path.parent.resolve(), source=str(path), lines=_yaml_key_lines(text),
                           overridden=overridden)


def validate_config(
    data: dict[str, Any], base_dir: Path, source: str = "<config>", lines: dict[tuple, int] | None = None,
    overridden: dict[tuple, str] | None = None,
) -> R1TuneConfig:
    """Validate a config mapping; relative paths are resolved against `base_dir`. `overridden` maps the key
    paths that command-line overrides set to the override, so their errors say where they really came from."""
    try:
        return R1TuneConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        raise ConfigError(_describe_errors(err, source, lines or {}, overridden or {})) from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[tuple, str]:
    """Apply `section.key=value` overrides in place; values are parsed as YAML (`1e-4`, `true`, `[a, b]`).
    Returns {key path: override} for error messages."""
    applied: dict[tuple, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value", hint="e.g. train.lr=1e-4")
        parts = key.strip().split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = node.setdefault(part, {})
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"command-line override {item!r}: the value is not valid YAML ({err})") from None
        applied[tuple(int(p) if p.isdigit() else p for p in parts)] = item
        # YAML 1.1 reads `1e-4` as a string; the schema's float fields accept numeric strings anyway.
        if isinstance(node, list) and parts[-1].isdigit():
            node[int(parts[-1])] = value
        elif isinstance(node, dict):
            node[parts[-1]] = value
        else:
            raise ConfigError(f"override {item!r}: {'.'.join(parts[:-1])} is not a section")
    return applied


def _describe_errors(err: ValidationError, source: str, lines: dict[tuple, int], overridden: dict[tuple, str]) -> str:
    out = [f"{source}: {err.error_count()} problem(s) in the config"]
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        override = next((item for path, item in overridden.items() if loc[: len(path)] == path), None)
        line = None if override else _nearest_line(loc, lines)
        at = f" (from the command line: `{override}`)" if override else f" (line {line})" if line else ""
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            out.append(f"  {where}{at}: unknown key; allowed here: {allowed}")
        elif e["type"] == "missing":
            out.append(f"  {where}{at}: required field is missing")
        else:
            out.append(f"  {where}{at}: got {e.get('input')!r}: {e['msg']}")
    return "\n".join(out)


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = R1TuneConfig
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return sorted(model.model_fields)


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _yaml_key_lines(text: str) -> dict[tuple, int]:
    """Map each YAML key path (as a tuple) to its 1-based line, so errors can point at the line."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[tuple, int] = {}

    def walk(node: yaml.Node | None, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return found


def dump_config(cfg: R1TuneConfig) -> str:
    """The resolved config as YAML (paths absolute), as saved in every run folder."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
