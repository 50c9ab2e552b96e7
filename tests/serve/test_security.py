"""API key files (hashed at rest), authentication and the rate limiter."""

from __future__ import annotations

import pytest

from r1tune.errors import ConfigError
from r1tune.serve.security import ApiKeys, RateLimiter, add_key, read_keys_file


def test_added_key_is_stored_only_as_a_hash_and_authenticates(tmp_path, monkeypatch):
    keys_file = tmp_path / "keys.txt"
    user_key = add_key(keys_file, "alice")
    admin_key = add_key(keys_file, "ops", "admin")
    text = keys_file.read_text()
    assert user_key not in text and admin_key not in text and "sha256:" in text
    env_key = "plain-env-key-" + "0123456789abcdef" * 2
    monkeypatch.setenv("EXTRA_KEYS", f"{env_key}, ")
    keys = ApiKeys.load(keys_file, "EXTRA_KEYS")
    assert keys.authenticate(user_key).name == "alice"
    assert keys.authenticate(admin_key).role == "admin"
    assert keys.authenticate(env_key).role == "user"
    assert keys.authenticate(user_key + "x") is None and keys.authenticate("") is None
    with pytest.raises(ConfigError, match="already has a key named 'alice'"):
        add_key(keys_file, "alice")


@pytest.mark.parametrize("line, problem", [
    ("alice user 1234", "expected `name role sha256:<hex>`"),
    ("alice root sha256:" + "0" * 64, "role must be user or admin"),
    ("alice user sha256:abc", "64 hex digits"),
])
def test_malformed_key_file_names_file_and_line(tmp_path, line, problem):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# comment\n\n" + line + "\n")
    with pytest.raises(ConfigError, match=problem) as err:
        read_keys_file(keys_file)
    assert f"{keys_file}:3" in str(err.value)


def test_missing_key_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ApiKeys.load(tmp_path / "missing.txt", None)


def test_rate_limiter_allows_a_burst_then_refuses_per_identity():
    limiter = RateLimiter(per_minute=3)
    assert [limiter.check("a") for _ in range(3)] == [None, None, None]
    wait = limiter.check("a")
    assert wait is not None and 0 < wait <= 20
    assert limiter.check("b") is None  # other identities have their own bucket
    assert RateLimiter(0).check("a") is None  # 0 = off


def test_weak_environment_keys_stop_the_server_unless_allowed(monkeypatch):
    monkeypatch.setenv("EXTRA_KEYS", "r1t-" + "x" * 40 + ",hunter2")
    with pytest.raises(ConfigError, match="EXTRA_KEYS: key #2 has 7 characters; at least 32") as err:
        ApiKeys.load(None, "EXTRA_KEYS")
    assert "hunter2" not in str(err.value) and "allow_weak_keys" in (err.value.hint or "")
    assert ApiKeys.load(None, "EXTRA_KEYS", allow_weak=True).authenticate("hunter2").role == "user"


def test_peek_counts_nothing_and_sees_an_exhausted_bucket():
    limiter = RateLimiter(per_minute=2)
    assert limiter.peek("a") is None and limiter.peek("a") is None
    limiter.check("a")
    limiter.check("a")
    wait = limiter.peek("a")
    assert wait is not None and 0 < wait <= 30
    assert limiter.peek("b") is None
