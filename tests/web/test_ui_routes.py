"""The UI's page and bundle routes, without a browser."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from vigil.web.ui_routes import ui_page, ui_routes


def test_every_ui_address_answers_the_page_with_a_strict_policy(tmp_path: Path) -> None:
    (tmp_path / "main.js").write_text("console.log(1)")
    (tmp_path / "main.css").write_text("body {}")
    client = TestClient(Starlette(routes=ui_routes(tmp_path)))
    for path in ("/ui/dashboards", "/ui/dashboards/web", "/ui/errors/3f9c", "/ui/logs"):
        r = client.get(path)
        assert r.status_code == 200 and '<div id="app">' in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/ui/static/main.js").text == "console.log(1)"
    assert client.get("/ui/static/nope.js").status_code == 404
    r = client.get("/ui/", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/ui/dashboards"


def test_a_missing_bundle_says_how_to_build_it(tmp_path: Path) -> None:
    status, text = ui_page(tmp_path)
    assert status == 503 and "make setup" in text and "main.js" in text
