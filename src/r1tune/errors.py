"""The one exception family r1tune raises for problems a user can fix.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
Every message names *what* is wrong and *where* (file, line, field), and a `hint` says how to fix it.
"""

from __future__ import annotations


class R1TuneError(Exception):
    """A user-fixable problem: bad config, missing file, malformed record, unavailable model."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message


class ConfigError(R1TuneError):
    """The project YAML (or a command-line override) does not match the schema."""


class DataError(R1TuneError):
    """An input data file cannot be read, or none of its records are usable."""


class ModelLoadError(R1TuneError):
    """A model or tokenizer cannot be found or is refused for safety reasons."""
