"""`app.cache` as a library of its own: no imports from the app, a `py.typed`, and a memory path without redis."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "app" / "cache"

# Runs in a fresh interpreter where importing redis or hiredis fails as if they were not installed.
_SCRIPT = """
import asyncio
import importlib.abc
import sys


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"redis", "hiredis"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())

import msgspec

import app.cache
from app.cache import CacheManager, CacheSpec, CircuitBreakerBackend, MemoryBackend, NearCache


class Point(msgspec.Struct, frozen=True):
    x: int
    y: int


async def main() -> None:
    manager = CacheManager(CircuitBreakerBackend(MemoryBackend(max_entries=100)), prefix="t")
    cache = manager.cache(CacheSpec(namespace="point", key_type=int, value_type=Point, policy={"ttl": 60.0}))
    await cache.set(1, Point(1, 2))
    assert await cache.get(1) == Point(1, 2)
    assert await cache.get_or_load(2, lambda key: _load(key)) == Point(2, 4)
    assert (await manager.health()).status == "ok"
    await manager.close()


async def _load(key: int) -> Point:
    return Point(key, key * 2)


asyncio.run(main())
assert NearCache is not None
loaded = sorted(name for name in sys.modules if name.partition(".")[0] in {"redis", "hiredis"})
assert not loaded, loaded
try:
    app.cache.RedisBackend
except ModuleNotFoundError as exc:
    assert exc.name == "redis", exc.name
else:
    raise AssertionError("RedisBackend imported without redis")
print("memory path ok")
"""


def test_memory_backend_cache_and_manager_work_without_redis_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "memory path ok"


@pytest.mark.parametrize("name", ["RedisBackend", "InvalidationBus"])
def test_the_redis_parts_are_still_exported(name: str) -> None:
    import app.cache

    assert name in app.cache.__all__
    assert getattr(app.cache, name).__name__ == name
    assert name in dir(app.cache)


def test_the_package_is_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_package_imports_nothing_from_the_app() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) > 10
    outside = {
        (path.name, module)
        for path in sources
        for module in _imported_modules(path)
        if module.partition(".")[0] == "app" and not (module == "app.cache" or module.startswith("app.cache."))
    }
    assert outside == set()
