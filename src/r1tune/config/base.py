"""What every config section shares: strict sections (unknown keys rejected) and project-relative paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

CONFIG_FILENAME = "r1tune.yaml"


def _resolve_against_config_dir(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in a project file mean 'relative to that file', wherever r1tune is started from."""
    base = (info.context or {}).get("base_dir")
    value = Path(os.path.expanduser(str(value)))
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


ProjectPath = Annotated[Path, AfterValidator(_resolve_against_config_dir)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


PiiType = Literal["CN_ID", "PHONE", "BANK_CARD", "USCC", "PASSPORT", "EMAIL", "IP", "URL_SECRET", "PERSON", "ADDRESS"]
