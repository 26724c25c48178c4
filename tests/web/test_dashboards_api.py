"""The dashboards API over a directory of files."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from vigil.web.dashboard_files import DashboardFiles
from vigil.web.dashboards_api import dashboard_routes


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(Starlette(routes=dashboard_routes(DashboardFiles(tmp_path))))


def test_put_get_list_delete(client: TestClient, tmp_path: Path) -> None:
    doc = {"title": "Web", "panels": [{"title": "CPU", "targets": ["servers.*.cpu"]}]}
    saved = client.put("/api/dashboards/web", json=doc)
    assert saved.status_code == 200
    assert saved.json()["dashboard"]["panels"] == doc["panels"]
    assert (tmp_path / "web.json").exists()
    got = client.get("/api/dashboards/web").json()
    assert got["name"] == "web" and got["dashboard"]["from"] == "-6h"
    assert client.get("/api/dashboards").json() == {
        "dashboards": [{"name": "web", "title": "Web", "panels": 1}]
    }
    assert client.delete("/api/dashboards/web").json() == {"deleted": True}
    assert client.get("/api/dashboards/web").status_code == 404
    assert client.delete("/api/dashboards/web").status_code == 404


def test_bad_requests_and_bad_files_say_why(client: TestClient, tmp_path: Path) -> None:
    r = client.put("/api/dashboards/web", content=b"{nope")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = client.put("/api/dashboards/web", json={"title": "x", "panels": [{"targets": "a"}]})
    assert r.status_code == 400 and "panels[0].targets" in r.json()["error"]
    r = client.put("/api/dashboards/..%2Fx", json={"title": "x"})
    assert r.status_code in (400, 404)
    (tmp_path / "broken.json").write_text('{"title": 1}')
    assert client.get("/api/dashboards/broken").status_code == 422
    listed = client.get("/api/dashboards").json()["dashboards"]
    assert listed[0]["name"] == "broken" and "title must be a string" in listed[0]["error"]
