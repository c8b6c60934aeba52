"""What README.md quotes (an error body, a benchmark factor) is what the app prints and the benchmark measured."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.testing import TestClient

from app.config import Settings
from app.server import create_app
from tests.deploy.files import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_curl_example_of_a_400_quotes_the_detail_the_app_answers(tmp_path: Path) -> None:
    [line] = [line for line in README.splitlines() if line.startswith("curl localhost:8000/users/abc ")]
    quoted = line.partition("# 400: ")[2]
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/users.db"}, env_file=None)
    with TestClient(create_app(settings)) as client:
        response = client.get("/users/abc")
    assert response.status_code == 400
    assert quoted == response.json()["detail"]


def test_the_granian_factor_is_the_range_of_the_committed_benchmark_run() -> None:
    """Requests per second of each `*-granian` case over its uvicorn twin, at every concurrency in RESULTS.md."""
    req_per_s: dict[tuple[str, int], int] = {}
    for line in (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8").splitlines():
        # Case | Request | [users |] c | req/s: the users column came with the cases at scale.
        if match := re.match(
            r"\|[^|]*`(?P<case>[\w-]+)` \| [^|]+ \| (?:[\d,]+ \| )?(?P<c>\d+) \| (?P<rps>[\d,]+) ", line
        ):
            req_per_s[match["case"], int(match["c"])] = int(match["rps"].replace(",", ""))
    factors = [
        rps / req_per_s[case.removesuffix("-granian"), c]
        for (case, c), rps in req_per_s.items()
        if case.endswith("-granian")
    ]
    assert len(factors) >= 2
    expected = f"`SERVER=granian` served {min(factors):.1f}-{max(factors):.1f}x the requests per second of uvicorn"
    assert expected in " ".join(README.split())
