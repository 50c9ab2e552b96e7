"""API keys (401 in OpenAI's format), admin-only endpoints, per-key rate limits (429), CORS off by default,
and the startup refusals (unauthenticated public bind, trust_remote_code)."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import openai
import pytest

from r1tune.configfile import load_config
from r1tune.errors import ConfigError
from r1tune.serve import ServeTarget, add_key, build_runtime

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def secured(tmp_path_factory, tiny_llama_dir, serve_in_thread, project_runtime):
    folder = tmp_path_factory.mktemp("secured")
    keys_file = folder / "keys.txt"
    user_key, admin_key = add_key(keys_file, "alice"), add_key(keys_file, "ops", "admin")
    runtime = project_runtime(folder, tiny_llama_dir, f"""\
serve:
  api_keys_file: {keys_file}
  rate_limit_per_minute: 6
  default_max_tokens: 2
  log_completions: false
""")
    with serve_in_thread(runtime) as url:
        yield SimpleNamespace(url=url, runtime=runtime, user_key=user_key, admin_key=admin_key)


def _client(server, key):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_missing_or_wrong_key_is_401_in_openai_format(secured):
    response = httpx.post(secured.url + "/v1/chat/completions", json={"model": "x", "messages": USER})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        _client(secured, "r1t-wrong").models.list()
    assert httpx.get(secured.url + "/metrics").status_code == 401
    assert httpx.get(secured.url + "/health").status_code == 200  # liveness needs no key


def test_admin_endpoints_need_an_admin_key(secured):
    body = {"lora_name": "nothing"}
    as_user = httpx.post(secured.url + "/v1/unload_lora_adapter", json=body,
                         headers={"Authorization": f"Bearer {secured.user_key}"})
    assert as_user.status_code == 403 and as_user.json()["error"]["code"] == "not_admin"
    as_admin = httpx.post(secured.url + "/v1/unload_lora_adapter", json=body,
                          headers={"Authorization": f"Bearer {secured.admin_key}"})
    assert as_admin.status_code == 404  # authorised; there is just no such adapter


def test_rate_limit_per_key_answers_429_with_retry_after(secured):
    client = _client(secured, secured.user_key)
    with pytest.raises(openai.RateLimitError) as err:
        for _ in range(10):
            client.chat.completions.create(model=secured.runtime.base_id, messages=USER)
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert err.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    # another key has its own budget
    assert _client(secured, secured.admin_key).models.list().data


def test_cors_is_off_by_default(secured):
    preflight = httpx.options(secured.url + "/v1/chat/completions",
                              headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_public_bind_without_keys_and_remote_code_are_refused(tmp_path, tiny_llama_dir):
    from helpers import write_project

    public = load_config(write_project(tmp_path, tiny_llama_dir, extra="serve: {host: 0.0.0.0}\n"))
    with pytest.raises(ConfigError, match="without API keys"):
        build_runtime(ServeTarget(public))
    remote = load_config(write_project(tmp_path, tiny_llama_dir), ["model.trust_remote_code=true"])
    with pytest.raises(ConfigError, match="trust_remote_code"):
        build_runtime(ServeTarget(remote))
