"""A served adapter name takes new weights without a restart (`/v1/swap_lora_adapter`, what promoting or
rolling back a model version does): new requests answer with the new weights, exactly as those weights
do under their own name; a request running during the swap finishes normally; the old weights are
detached once unused; unknown names are refused."""

from __future__ import annotations

import threading

import httpx

MESSAGES = [{"role": "user", "content": "Describe a blue ceramic mug."}]


def _answer(url: str, model: str, max_tokens: int = 12) -> dict:
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=120,
                       json={"model": model, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_swap_serves_the_new_weights_without_a_restart(adapter_runs, tiny_llama_dir, tmp_path, project_runtime,
                                                       serve_in_thread):
    shop, clinic = adapter_runs["shop"], adapter_runs["clinic"]
    runtime = project_runtime(tmp_path, tiny_llama_dir,
                              f"serve: {{adapters: [{{name: shop, path: '{shop}'}}, {{name: clinic, path: '{clinic}'}}], "
                              f"adapter_dirs: ['{shop.parent}']}}")  # the admin endpoint's allowed folder
    runtime.start()
    try:
        with serve_in_thread(runtime) as url:
            before = _answer(url, "shop")["choices"][0]["message"]["content"]
            clinic_answer = _answer(url, "clinic")["choices"][0]["message"]["content"]
            assert before != clinic_answer  # two different random adapters
            running: dict = {}
            worker = threading.Thread(target=lambda: running.update(_answer(url, "shop", max_tokens=64)))
            worker.start()
            swap = httpx.post(f"{url}/v1/swap_lora_adapter", timeout=120,
                              json={"lora_name": "shop", "lora_path": str(clinic)})
            worker.join(120)
            assert swap.status_code == 200, swap.text
            assert running["choices"][0]["finish_reason"] in ("stop", "length")  # finished, not failed
            after = _answer(url, "shop")
            assert after["choices"][0]["message"]["content"] == clinic_answer
            versions = {m["id"]: m.get("version") for m in httpx.get(f"{url}/v1/models").json()["data"]}
            assert versions["shop"] == versions["clinic"] == swap.json()["version"]
            assert set(runtime.engine.model.peft_config) == {"clinic", "shop__1"}  # the old weights are gone
            missing = httpx.post(f"{url}/v1/swap_lora_adapter", json={"lora_name": "nope", "lora_path": str(clinic)})
            assert missing.status_code == 404 and "no adapter named 'nope'" in missing.text
    finally:
        runtime.close()


def test_versions_promote_and_rollback_swap_a_running_server(adapter_runs, tiny_llama_dir, tmp_path, project_runtime,
                                                             serve_in_thread):
    from typer.testing import CliRunner

    from r1tune.cli import app

    shop, clinic = adapter_runs["shop"], adapter_runs["clinic"]
    runtime = project_runtime(tmp_path, tiny_llama_dir,
                              f"serve: {{adapters: [{{name: shop, path: '{shop}'}}], adapter_dirs: ['{shop.parent}']}}")
    runtime.start()
    project, db = tmp_path / "r1tune.yaml", f"sqlite:///{tmp_path / 'registry.db'}"

    def versions(*args):
        result = CliRunner().invoke(app, ["versions", *args, "--database-url", db], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    try:
        with serve_in_thread(runtime) as url:
            first = _answer(url, "shop")["choices"][0]["message"]["content"]
            versions("register", str(project), str(shop), "--name", "shop")
            versions("register", str(project), str(clinic), "--name", "shop", "--parent", "shop")
            versions("promote", str(project), "shop")
            assert "now serves shop" in versions("promote", str(project), "clinic", "--server", url)
            second = _answer(url, "shop")["choices"][0]["message"]["content"]
            assert second != first
            versions("rollback", str(project), "shop", "--server", url)
            assert _answer(url, "shop")["choices"][0]["message"]["content"] == first
            assert "live" in versions("list", str(project))
    finally:
        runtime.close()


def test_a_canary_answers_its_share_sticky_per_user_and_the_store_says_which_version(
        adapter_runs, tiny_llama_dir, tmp_path, project_runtime, serve_in_thread):
    shop, clinic = adapter_runs["shop"], adapter_runs["clinic"]
    runtime = project_runtime(tmp_path, tiny_llama_dir,
                              f"serve: {{adapters: [{{name: shop, path: '{shop}'}}, {{name: clinic, path: '{clinic}'}}], "
                              f"adapter_dirs: ['{shop.parent}']}}")
    runtime.start()

    def answer(url, model, user=None):
        body = {"model": model, "messages": MESSAGES, "max_tokens": 12, "temperature": 0, **({"user": user} if user else {})}
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()["choices"][0]["message"]["content"]

    try:
        with serve_in_thread(runtime) as url:
            live, candidate = answer(url, "shop"), answer(url, "clinic")
            everyone = httpx.post(f"{url}/v1/canary", json={"lora_name": "shop", "lora_path": str(clinic), "share": 1.0})
            assert everyone.status_code == 200 and everyone.json()["status"] == "canary"
            assert answer(url, "shop", "u1") == candidate
            httpx.post(f"{url}/v1/canary", json={"lora_name": "shop", "lora_path": str(clinic), "share": 0.5})
            sides = {user: answer(url, "shop", user) for user in [f"user-{i}" for i in range(12)]}
            assert set(sides.values()) == {live, candidate}  # both sides get traffic
            assert all(answer(url, "shop", user) == text for user, text in list(sides.items())[:4])  # sticky
            ended = httpx.post(f"{url}/v1/canary", json={"lora_name": "shop", "share": 0.0}).json()
            assert ended["status"] == "ended" and answer(url, "shop", "user-0") == live
            versions = {c.adapter_version for c, _ in runtime.store.completions_with_feedback() if c.adapter == "shop"}
            assert len(versions) == 2  # the store says which version answered each request
            missing = httpx.post(f"{url}/v1/canary", json={"lora_name": "nope", "lora_path": str(clinic), "share": 0.1})
            assert missing.status_code == 404
    finally:
        runtime.close()


def test_the_server_starts_with_each_names_live_version(adapter_runs, tiny_llama_dir, tmp_path, project_runtime):
    from r1tune.rundir import open_run
    from r1tune.serve.store import FeedbackStore
    from r1tune.serve.versions import VersionRegistry

    shop, clinic = adapter_runs["shop"], adapter_runs["clinic"]
    registry = VersionRegistry(FeedbackStore(f"sqlite:///{tmp_path / 'runs' / 'feedback.db'}"))
    registry.register(open_run(clinic), "shop")
    registry.promote("clinic", "ana", "gate passed")  # the live version of `shop` is the clinic run
    runtime = project_runtime(tmp_path, tiny_llama_dir, f"serve: {{adapters: [{{name: shop, path: '{shop}'}}]}}")
    try:
        served = runtime.registry.get("shop")
        assert served.path.resolve() == (clinic / "train" / "adapter").resolve()
        assert served.version == runtime.registry.adapters["shop"].version
        (tmp_path / "off").mkdir()
        same_db = f"sqlite:///{tmp_path / 'runs' / 'feedback.db'}"  # the same registry, switched off
        off = project_runtime(tmp_path / "off", tiny_llama_dir,
                              f"serve: {{live_versions: false, database_url: '{same_db}', "
                              f"adapters: [{{name: shop, path: '{shop}'}}]}}")
        assert off.registry.get("shop").path.resolve() == (shop / "train" / "adapter").resolve()
        off.close()
    finally:
        runtime.close()
