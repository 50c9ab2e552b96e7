"""Fixtures for the server tests: tiny adapter runs, an in-process uvicorn server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import product_records
from serve_helpers import build_project_runtime, make_adapter_run, running_server

from r1tune.data.records import Message, Record
from r1tune.serve.server import free_port

CLINIC_PROMPTS = [
    "我头疼发烧三天了，应该吃什么药？", "孩子咳嗽有痰，需要去医院吗？", "血压高应该注意什么饮食？",
    "胃疼是什么原因引起的？", "感冒了可以吃抗生素吗？", "失眠怎么办，有什么建议？",
    "糖尿病人能吃水果吗？", "膝盖疼痛需要做什么检查？",
]


def clinic_records() -> list[Record]:
    return [Record([Message("user", p), Message("assistant", "请及时就医，遵医嘱用药。")]) for p in CLINIC_PROMPTS]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The tiny test models gain nothing from intra-op threads, and on a busy machine the threads' spin-waits
    made each step ~10x slower; restored afterwards for the other test folders."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def adapter_runs(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """Two adapter runs on the tiny Llama: `shop` (English product copy) and `clinic` (Chinese medical)."""
    root = tmp_path_factory.mktemp("adapter_runs")
    return {"shop": make_adapter_run(root, "shop", tiny_llama_dir, product_records(12), seed=1),
            "clinic": make_adapter_run(root, "clinic", tiny_llama_dir, clinic_records(), seed=2)}


@pytest.fixture(scope="session")
def serve_in_thread():
    """`with serve_in_thread(runtime) as base_url: ...`"""
    return running_server


@pytest.fixture(scope="session")
def project_runtime():
    """`project_runtime(folder, model_dir, serve_yaml)` -> a ServeRuntime (not started)."""
    return build_project_runtime


@pytest.fixture
def tcp_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


POSTGRES_URL_ENV = "R1TUNE_TEST_POSTGRES_URL"  # a role allowed to create databases; `make test` sets it
POSTGRES_REQUIRED_ENV = "R1TUNE_REQUIRE_POSTGRES"  # CI sets it: no PostgreSQL is then a failure, not a skip


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards); skipped without a server."""
    import os
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    def unavailable(reason: str) -> None:
        if os.environ.get(POSTGRES_REQUIRED_ENV):
            pytest.fail(reason)
        pytest.skip(reason)

    admin_url = os.environ.get(POSTGRES_URL_ENV)
    if not admin_url:
        unavailable(f"no PostgreSQL to test against ({POSTGRES_URL_ENV} is not set)")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"r1tune_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:
        admin.dispose()
        unavailable(f"PostgreSQL at {make_url(admin_url).render_as_string()} is not usable: {str(err).splitlines()[0]}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The feedback store's URL on each supported backend: SQLite (the default) and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("postgres_url")
