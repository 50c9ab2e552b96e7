"""`r1tune loop --every`: durations a scheduler-less deployment can give, and the ones refused."""

from __future__ import annotations

import pytest

from r1tune.cli_loop import parse_every
from r1tune.errors import ConfigError


def test_durations():
    assert [parse_every(t) for t in ("30d", "12h", "45m", "90s")] == [2_592_000, 43_200, 2_700, 90]


@pytest.mark.parametrize("text", ["30", "0d", "1w", "-3d", "d30", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_every(text)
