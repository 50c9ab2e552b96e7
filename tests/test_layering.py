"""Imports only go downward: cli > loop > serve/export/eval/train > data/models > config/errors.

Every import form counts: `from r1tune.x import y`, `from r1tune import x`, `import r1tune.x`, and
relative imports (`from . import x`, `from ..x import y`), at module level or inside functions (lazy
imports are still dependencies)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "r1tune"
LEVEL = {"__main__": 7, "cli": 6, "cli_labels": 5.9, "cli_ship": 5.9, "cli_teacher": 5.9, "cli_versions": 5.9, "cli_feedback": 5.9, "cli_loop": 5.9, "cli_tables": 5.5, "loop": 5, "serve": 4, "export": 4, "eval": 4, "train": 4,
         "data": 3, "models": 3, "teacher": 4, "rundir": 2, "artifacts": 2, "configfile": 1.5, "configdocs": 1.5, "agreement": 1.5, "home": 1.5,
         "config": 1, "errors": 0, "__init__": 0}
# models may use data's record types (a record is what a chat format renders); data never imports models.
ALLOWED_SIDEWAYS = {("models", "data"), ("rundir", "artifacts"), ("export", "eval"), ("teacher", "eval")}  # a model card quotes the eval


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(tree: ast.AST, here: str) -> list[str]:
    """Every `r1tune...` module a file imports, in absolute form. `here` is the file's own dotted name
    (for a package's `__init__`, the package), used to resolve relative imports."""
    out = []
    package = here.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names if alias.name.split(".")[0] == "r1tune"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "r1tune":
                continue
            # `from r1tune import models` imports the module r1tune.models
            out += [f"{base}.{a.name}" if base == "r1tune" else base for a in node.names]
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(rel.parts)
    return name[: -len(".__init__")] + ".__init__" if name.endswith(".__init__") else name


def test_no_upward_imports():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        here = _module_name(path)
        layer = _layer(here.replace(".__init__", "")) if here != "r1tune.__init__" else "__init__"
        for module in imported_modules(ast.parse(path.read_text()), here):
            there = _layer(module)
            if there == layer or (layer, there) in ALLOWED_SIDEWAYS or there not in LEVEL:
                continue
            if LEVEL[there] >= LEVEL[layer]:
                problems.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not problems, problems


@pytest.mark.parametrize("source, here, expected", [
    ("from r1tune.cli import main", "r1tune.models.x", ["r1tune.cli"]),
    ("from r1tune import cli", "r1tune.models.x", ["r1tune.cli"]),
    ("import r1tune.cli", "r1tune.models.x", ["r1tune.cli"]),
    ("import r1tune.cli as c", "r1tune.models.x", ["r1tune.cli"]),
    ("from .. import cli", "r1tune.models.x", ["r1tune.cli"]),
    ("from ..cli import main", "r1tune.models.x", ["r1tune.cli"]),
    ("from .loading import f", "r1tune.models.x", ["r1tune.models.loading"]),
    ("from . import loading", "r1tune.models.__init__", ["r1tune.models"]),
    ("def f():\n    from r1tune import cli", "r1tune.models.x", ["r1tune.cli"]),
    ("import numpy", "r1tune.models.x", []),
])
def test_every_import_form_is_seen(source, here, expected):
    assert imported_modules(ast.parse(source), here) == expected
