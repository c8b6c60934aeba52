"""The documentation pages load nothing from outside the service (issue 10, item 3)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.config import Settings
from app.docs import REDOC_VERSION, SWAGGER_UI_VERSION
from app.server import create_app
from tests.users.test_api import assert_problem

ASSETS = Path(__file__).parent.parent / "app" / "docs_assets"
PAGES = ["/schema", "/schema/swagger", "/schema/redoc"]
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    database = tmp_path_factory.mktemp("docs") / "users.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{database}"))) as client:
        yield client


def references(html: str) -> list[str]:
    """Every URL a page loads or links to."""
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(r"""url\(["']?([^)"']+)""", html)


@pytest.mark.parametrize("page", PAGES)
def test_pages_reference_no_other_host(client: TestClient[Litestar], page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = references(response.text)
    assert urls, "the page loads its scripts"
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", response.text, re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES)
def test_every_asset_a_page_loads_answers_with_its_type_and_caching(client: TestClient[Litestar], page: str) -> None:
    for url in references(client.get(page).text):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].split(";")[0] == CONTENT_TYPES[Path(url).suffix], url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) > 100


def test_pages_use_the_pinned_versions(client: TestClient[Litestar]) -> None:
    assert f"/swagger-ui-dist-{SWAGGER_UI_VERSION}/swagger-ui-bundle.js" in client.get("/schema/swagger").text
    assert f"/redoc-{REDOC_VERSION}/redoc.standalone.js" in client.get("/schema/redoc").text


@pytest.mark.parametrize(
    "path",
    [
        "/schema/assets/nope/swagger-ui.css",
        f"/schema/assets/swagger-ui-dist-{SWAGGER_UI_VERSION}/LICENSE",
        f"/schema/assets/swagger-ui-dist-{SWAGGER_UI_VERSION}/..%2F..%2F__init__.py",
        "/schema/assets/x",
    ],
)
def test_other_asset_paths_are_problem_404s(client: TestClient[Litestar], path: str) -> None:
    assert_problem(client.get(path), 404)


def test_vendored_files_match_the_published_checksums() -> None:
    readme = (ASSETS / "README.md").read_text()
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.MULTILINE))
    assert len(listed) == 4
    for name, digest in listed.items():
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest, name
    for directory in (f"swagger-ui-dist-{SWAGGER_UI_VERSION}", f"redoc-{REDOC_VERSION}"):
        assert (ASSETS / directory / "LICENSE").is_file()
        assert directory in readme
