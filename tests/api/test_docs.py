"""``/docs`` is served from the app's own vendored Swagger UI, with the dashboard's headers (issue 23)."""

from __future__ import annotations

import hashlib
import re

from fastapi.testclient import TestClient

from services.router.web.docs import ASSETS, SWAGGER_UI_VERSION


def test_docs_page_loads_only_its_own_assets_under_the_dashboards_headers(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script: the initializer is a file
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(refs) == 4 and not [r for r in refs if "//" in r]
    for ref in refs:
        if ref.startswith("data:"):
            continue
        asset = client.get(ref)  # public: no key needed
        assert asset.status_code == 200, ref
        assert asset.headers["x-content-type-options"] == "nosniff", ref
    assert client.get("/openapi.json").status_code == 200


def test_vendored_swagger_ui_is_the_pinned_release_with_its_licence() -> None:
    readme = (ASSETS / "README.md").read_text()
    assert f"**{SWAGGER_UI_VERSION}**" in readme
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        digest = hashlib.sha256((ASSETS / name).read_bytes()).hexdigest()
        assert f"| `{name}` | `{digest}` |" in readme, f"{name} differs from the vendored release"
    assert "Apache License" in (ASSETS / "LICENSE").read_text()
    assert "SmartBear" in (ASSETS / "NOTICE").read_text()


def test_assets_folder_is_not_a_way_out(client: TestClient) -> None:
    assert client.get("/docs/assets/../docs.py").status_code in (401, 404)
    assert client.get("/docs/assets/%2e%2e/docs.py").status_code in (401, 404)
    assert client.get("/docs/oauth2-redirect").status_code == 401  # no such page: an API path like any other
