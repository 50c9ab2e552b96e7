"""The configuration reference (the README's table, `r1tune config docs`), generated from the schema's field
types, defaults and descriptions, so the documentation cannot drift from the code."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from r1tune.config import R1TuneConfig, _Section


def config_reference_markdown() -> str:
    """A Markdown table per section, generated from the field descriptions (used for the README)."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def emit(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            inner = getattr(annotation, "__args__", (annotation,))
            nested = [a for a in inner if isinstance(a, type) and issubclass(a, _Section)]
            key = f"{prefix}{name}"
            if nested and getattr(annotation, "__origin__", None) is not list:
                emit(nested[0], key + ".")
                continue
            if nested:  # a list of sections (sources, adapters, ...): document the item fields
                rows.append(f"| `{key}` | list | {_default_text(field)} | {field.description} |")
                emit(nested[0], key + "[].")
                continue
            rows.append(f"| `{key}` | {_type_text(annotation)} | {_default_text(field)} | {field.description} |")

    emit(R1TuneConfig, "")
    return "\n".join(rows) + "\n"


def _type_text(annotation: Any) -> str:
    """A field's type as a reader writes it: `Path | None`, `list[str]`; `Annotated` wrappers (validators) are
    looked through, so a path field reads `Path` however it is validated."""
    if get_origin(annotation) is Annotated:
        return _type_text(get_args(annotation)[0])
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (Union, UnionType):
        return " \\| ".join(_type_text(a) for a in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin).replace("typing.", ""))
        return f"{name}[{', '.join(_type_text(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "—"
    return f"`{value}`" if value not in (None, []) else ("`[]`" if value == [] else "—")
