"""The case list: every key selectable, the cases at scale at c=32 only, the page target paired round by round."""

from __future__ import annotations

import pytest

from bench.cases import CASES, NEAR_PAIRS, ONE_SHOT, selected_cases, selected_one_shots
from bench.config import BenchConfig
from bench.procs import BenchError
from bench.reporting import evaluate_targets
from bench.running import CaseResult, WrkRun


def _config(monkeypatch: pytest.MonkeyPatch, cases: str | None = None) -> BenchConfig:
    monkeypatch.delenv("BENCH_CASES", raising=False)
    monkeypatch.delenv("BENCH_CONCURRENCY", raising=False)
    if cases is not None:
        monkeypatch.setenv("BENCH_CASES", cases)
    return BenchConfig.from_env()


def test_a_full_run_runs_every_case_and_every_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch)
    assert selected_cases(config) == list(CASES)
    assert selected_one_shots(config) == list(ONE_SHOT) == ["cold-start", "memory"]
    assert len({case.key for case in CASES}) == len(CASES)


def test_subsets_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch, "pg-page-100k,memory")
    assert [case.key for case in selected_cases(config)] == ["pg-page-100k"]
    assert selected_one_shots(config) == ["memory"]
    config = _config(monkeypatch, "none")
    assert selected_cases(config) == []
    assert selected_one_shots(config) == []


def test_an_unknown_key_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BenchError, match=r"unknown \['nope'\].*pg-page-100k.*cold-start"):
        selected_cases(_config(monkeypatch, "nope,memory"))


def test_the_cases_at_scale_run_at_c32_only() -> None:
    scale = [case for case in CASES if case.key.startswith("pg-")]
    assert {case.key for case in scale} == {
        "pg-id-10",
        "pg-id-100k",
        "pg-zipf-100k",
        "pg-page-100k",
        "pg-near-id-10",
        "pg-near-id-100k",
        "pg-near-zipf-100k",
    }
    assert all(case.runs_at(32) and not case.runs_at(64) for case in scale)
    assert all(case.runs_at(64) for case in CASES if case not in scale)


def _result(key: str, *rps: float) -> CaseResult:
    case = next(case for case in CASES if case.key == key)
    run = dict.fromkeys(("bytes", "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"), 0)
    latency = dict.fromkeys(("p50_us", "p90_us", "p99_us", "max_us", "mean_us"), 1000.0)
    runs = [WrkRun(requests=int(r * 10), duration_us=10_000_000, **run, **latency) for r in rps]
    return CaseResult(case, 32, runs)


def test_the_page_target_is_the_median_of_round_by_round_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch)
    results = {
        ("pg-id-100k", 32): _result("pg-id-100k", 1000, 2000, 4000),
        ("pg-page-100k", 32): _result("pg-page-100k", 400, 500, 1000),  # 0.40, 0.25, 0.25
    }
    target = next(t for t in evaluate_targets(results, [], config) if t.name.startswith("Page of 50"))
    assert target.measured.startswith("0.25x")
    assert target.holds is False
    # 0.40, 0.25, 0.35: the median ratio is 0.35, while the ratio of the medians (500 / 2000) would be 0.25
    results[("pg-page-100k", 32)] = _result("pg-page-100k", 400, 500, 1400)
    target = next(t for t in evaluate_targets(results, [], config) if t.name.startswith("Page of 50"))
    assert target.measured.startswith("0.35x")
    assert target.holds is True


def test_each_near_case_at_scale_is_judged_against_near_off(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(monkeypatch)
    keys = [key for pair in NEAR_PAIRS for key in pair]
    order = [case.key for case in CASES]
    assert all(order.index(near) > order.index(off) for near, off in NEAR_PAIRS)  # run after, in every round
    results = {(key, 32): _result(key, 1000) for key in keys}
    results[("pg-near-zipf-100k", 32)] = _result("pg-near-zipf-100k", 900)  # 0.90x: slower
    targets = {t.name: t for t in evaluate_targets(results, [], config) if "near" in t.name}
    held = {name.split("`")[1]: t.holds for name, t in targets.items() if name.startswith("`")}
    assert held == {"pg-near-id-10": True, "pg-near-id-100k": True, "pg-near-zipf-100k": False}
    p99 = next(t for name, t in targets.items() if name.startswith("p99 with 100k near entries"))
    assert p99.holds is True  # both 1 ms in `_result`
