"""The glibc setting that lets CPU training reuse freed pages: taken on glibc, a no-op elsewhere."""

from __future__ import annotations

import ctypes
import platform

import pytest

from r1tune.models import cpu_allocator


@pytest.fixture(autouse=True)
def fresh_cache():
    cpu_allocator.keep_freed_memory.cache_clear()
    yield
    cpu_allocator.keep_freed_memory.cache_clear()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_both_thresholds():
    assert cpu_allocator.keep_freed_memory() is True
    assert cpu_allocator.keep_freed_memory() is True  # once per process; later calls are the cached answer


def test_a_c_library_without_mallopt_changes_nothing(monkeypatch):
    class NoMallopt:
        def __init__(self, name):
            pass

        def __getattr__(self, name):
            raise AttributeError(name)

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert cpu_allocator.keep_freed_memory() is False


def test_a_c_library_that_cannot_load_changes_nothing(monkeypatch):
    def refuse(name):
        raise OSError(f"cannot load {name}")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert cpu_allocator.keep_freed_memory() is False
