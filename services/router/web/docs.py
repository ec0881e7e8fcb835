"""``/docs``: Swagger UI served by the router itself, under the dashboard's security headers.

FastAPI's default page loads Swagger UI from a public CDN (unpinned, without integrity, on the
dashboard's origin) and starts it with an inline script. Here the assets are vendored
(``swagger_ui/``, Swagger UI's licence beside them) and served from ``/docs/assets/``, and the
page starts them with a file (``docs.js``), so it is sent with the same Content-Security-Policy
as every dashboard page (``script-src 'self'``: nothing from another origin, no inline code),
``X-Frame-Options: DENY`` and ``nosniff``. No page of the app references another origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from services.router.web.rendering import PAGE_HEADERS

SWAGGER_UI_VERSION = "5.35.0"
ASSETS = Path(__file__).resolve().parent / "swagger_ui"
ASSETS_PATH = "/docs/assets"
OPENAPI_URL = "/openapi.json"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backlog Bridge API docs</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css?v={SWAGGER_UI_VERSION}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
<script src="{ASSETS_PATH}/docs.js?v={SWAGGER_UI_VERSION}"></script>
</body>
</html>
"""


async def docs_page(_: Request) -> Response:
    return HTMLResponse(PAGE, headers=PAGE_HEADERS)


def register(app: FastAPI) -> None:
    """The page and its assets; both public (``auth.PUBLIC_PATHS``, ``auth.PUBLIC_PREFIXES``)."""
    app.router.routes.append(Route("/docs", docs_page, methods=["GET"], include_in_schema=False, name="docs"))
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS, follow_symlink=False), name="docs_assets")
