"""`r1tune loop`: feedback since the live version → a candidate trained from it → gate → promote or reject."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from r1tune.errors import ConfigError

out = Console()
DURATION = re.compile(r"^(\d+)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> int:
    """`30d`, `12h`, `45m`, `90s` → seconds."""
    match = DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"--every {text!r} is not a duration", hint="a positive number and a unit: 30d, 12h, 45m, 90s")
    return int(match.group(1)) * SECONDS[match.group(2)]


def loop_cmd(
    config: Annotated[Path, typer.Argument(help="Project file (r1tune.yaml) or its folder.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. loop.min_feedback=50.")] = None,
    server: Annotated[str | None, typer.Option(help="A running r1tune server to swap a promoted version into "
                                               "(no restart) before the registry changes.")] = None,
    key_env: Annotated[str, typer.Option(help="Environment variable with that server's admin key.")] = "R1TUNE_ADMIN_KEY",
    every: Annotated[str | None, typer.Option(help="Keep running: one step now, then every DURATION (30d, 12h).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = False,
) -> None:
    """One improvement step for `loop.adapter` (idempotent: a scheduler may run it monthly, and a killed run
    is continued by the next)."""
    import getpass

    from r1tune.configfile import load_config
    from r1tune.loop.improve import improve

    pause = parse_every(every) if every else None
    while True:
        cfg = load_config(config, overrides or [])
        outcome = improve(cfg, getpass.getuser(), server, key_env, progress)
        out.print(outcome.message)
        if outcome.decision is not None:
            for check in outcome.decision.checks:
                mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
                change = "" if check.delta is None else f" ({check.delta:+.2f})"
                out.print(f"  {mark} {check.test_set} {check.metric}{change}: {check.rule}")
        if pause is None:
            return
        out.print(f"next step in {every}")
        time.sleep(pause)
