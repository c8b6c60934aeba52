"""The documentation pages (Swagger UI, ReDoc) with their scripts served by the service itself, so they work offline.

The files are vendored under `app/docs_assets/` (versions, licences and provenance in its README.md). Their URLs
carry the version, so they are cached for a year as immutable; a new version is a new URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.params import FromPath

__all__ = ("ASSETS_PATH", "REDOC_VERSION", "SWAGGER_UI_VERSION", "docs_assets", "render_plugins")

SWAGGER_UI_VERSION: Final = "5.35.0"
REDOC_VERSION: Final = "2.5.4"
ASSETS_PATH: Final = "/schema/assets"

_ASSETS_DIR = Path(__file__).parent / "docs_assets"
_SWAGGER = f"swagger-ui-dist-{SWAGGER_UI_VERSION}"
_REDOC = f"redoc-{REDOC_VERSION}"
_MEDIA_TYPES: Final = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}
_FILES: Final = {
    (_SWAGGER, "swagger-ui-bundle.js"),
    (_SWAGGER, "swagger-ui-standalone-preset.js"),
    (_SWAGGER, "swagger-ui.css"),
    (_SWAGGER, "favicon-32x32.png"),
    (_REDOC, "redoc.standalone.js"),
}
_CACHE_CONTROL: Final = "public, max-age=31536000, immutable"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI (the default page, `/schema` and `/schema/swagger`) and ReDoc, on the vendored files only."""
    favicon = f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/{_SWAGGER}/favicon-32x32.png'>"
    return [
        SwaggerRenderPlugin(
            js_url=f"{ASSETS_PATH}/{_SWAGGER}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/{_SWAGGER}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/{_SWAGGER}/swagger-ui-standalone-preset.js",
            favicon=favicon,
        ),
        RedocRenderPlugin(js_url=f"{ASSETS_PATH}/{_REDOC}/redoc.standalone.js", google_fonts=False, favicon=favicon),
    ]


@get(f"{ASSETS_PATH}/{{package:str}}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
def docs_assets(package: FromPath[str], name: FromPath[str]) -> Response[bytes]:
    """Serve one vendored file of the documentation pages.

    Raises:
        NotFoundException: No such file.
    """
    if (package, name) not in _FILES:
        raise NotFoundException(f"No documentation asset {package}/{name}")
    content = _read(package, name)
    return Response(
        content,
        media_type=_MEDIA_TYPES[Path(name).suffix],
        headers={"Cache-Control": _CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
    )


_CONTENT: dict[tuple[str, str], bytes] = {}


def _read(package: str, name: str) -> bytes:
    """The file's bytes, read once per process (about 3 MB for all of them)."""
    content = _CONTENT.get((package, name))
    if content is None:
        content = _CONTENT[package, name] = (_ASSETS_DIR / package / name).read_bytes()
    return content
