"""Where `make bench` writes its report: only a full run replaces the committed bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import COMMITTED_OUTPUT, QUICK_OUTPUT, BenchConfig

QUICK = {"BENCH_DURATION": "2", "BENCH_ROUNDS": "1", "BENCH_WARMUP": "1"}


@pytest.fixture(autouse=True)
def no_bench_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "BENCH_DURATION",
        "BENCH_ROUNDS",
        "BENCH_WARMUP",
        "BENCH_CONCURRENCY",
        "BENCH_THREADS",
        "BENCH_CASES",
        "BENCH_LIB",
        "BENCH_LIB_ROUNDS",
        "BENCH_LIB_TIME",
        "BENCH_OUTPUT",
        "BENCH_COLD_SECONDS",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_a_full_run_replaces_the_committed_results() -> None:
    config = BenchConfig.from_env()
    assert config.full
    assert config.output == COMMITTED_OUTPUT == Path(__file__).parents[2] / "bench" / "RESULTS.md"


def test_the_documented_defaults_spelled_out_are_a_full_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"BENCH_DURATION": "10", "BENCH_ROUNDS": "3", "BENCH_CONCURRENCY": "32,64"}.items():
        monkeypatch.setenv(name, value)
    assert BenchConfig.from_env().output == COMMITTED_OUTPUT


@pytest.mark.parametrize(
    "settings",
    [
        QUICK,
        {"BENCH_DURATION": "2"},
        {"BENCH_ROUNDS": "1"},
        {"BENCH_WARMUP": "0"},
        {"BENCH_CONCURRENCY": "32"},
        {"BENCH_THREADS": "4"},
        {"BENCH_CASES": "ceiling,baseline"},
        {"BENCH_LIB": "0"},
        {"BENCH_LIB_ROUNDS": "1"},
        {"BENCH_LIB_TIME": "0.05"},
        {"BENCH_COLD_SECONDS": "30"},
        {"BENCH_CASES": "pg-id-100k,pg-page-100k,cold-start,memory"},
    ],
)
def test_any_other_run_writes_to_the_ignored_work_directory(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    config = BenchConfig.from_env()
    assert not config.full
    assert config.output == QUICK_OUTPUT
    assert QUICK_OUTPUT.parent.name == ".work"
    assert "bench/.work/" in (COMMITTED_OUTPUT.parents[1] / ".gitignore").read_text(encoding="utf-8").split()


def test_bench_output_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in QUICK.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BENCH_OUTPUT", str(tmp_path / "quick.md"))
    assert BenchConfig.from_env().output == tmp_path / "quick.md"
