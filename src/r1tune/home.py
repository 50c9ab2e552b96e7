"""Where r1tune keeps what it derives from installed packages (converted models, extracted embeddings):
`$R1TUNE_HOME`, default `~/.cache/r1tune`. One place, so every stage agrees on it."""

from __future__ import annotations

import os
from pathlib import Path


def r1tune_home() -> Path:
    return Path(os.environ.get("R1TUNE_HOME") or Path.home() / ".cache" / "r1tune").expanduser()
