"""Imports only go downward: cli > loop > serve/export/eval/train > data/models > config/errors."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "r1tune"
LEVEL = {"__main__": 7, "cli": 6, "loop": 5, "serve": 4, "export": 4, "eval": 4, "train": 4,
         "data": 3, "models": 3, "rundir": 2, "config": 1, "errors": 0, "__init__": 0}
# models may use data's record types (a record is what a chat format renders); data never imports models.
ALLOWED_SIDEWAYS = {("models", "data")}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_no_upward_imports():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        here = _layer(".".join(rel.parts).replace(".__init__", ""))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("r1tune."):
                there = _layer(node.module)
                if there == here or (here, there) in ALLOWED_SIDEWAYS:
                    continue
                if LEVEL[there] >= LEVEL[here]:
                    problems.append(f"{rel} imports {node.module}")
    assert not problems, problems
