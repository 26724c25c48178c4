"""The HTTP API in process, on the real embedded engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from starlette.testclient import TestClient

from tests.clickhouse import ClickHouseServer
from vigil.model import POINTS_SCHEMA
from vigil.settings import QuerySettings
from vigil.store.backends import open_server
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore
from vigil.telemetry import Telemetry
from vigil.web.app import create_app

NOW = 1_800_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = open_embedded(tmp_path, StoragePolicy.from_files("", ""))
    s.clock = lambda: float(NOW)
    rows = [(f"web.h{i}.cpu", NOW - 60 + 10 * t, float(i + t)) for i in range(3) for t in range(6)]
    rows.append(("disk;host=a;dc=x", NOW - 10, 5.0))
    paths, ts, values = zip(*rows, strict=True)
    s.write_points(
        pa.table(
            [pa.array(paths), pa.array(ts, pa.uint32()), pa.array(values, pa.float64())],
            schema=POINTS_SCHEMA,
        )
    )
    yield s
    s.close()


@pytest.fixture
def client(store: SqlStore) -> TestClient:
    app = create_app(store, Telemetry("t"), QuerySettings(max_series=100), clock=lambda: NOW)
    return TestClient(app)


def test_render_get_and_post_with_several_targets(client: TestClient) -> None:
    params = {"target": ["web.h0.cpu", "sumSeries(web.*.cpu)"], "from": "-1min", "until": "-1s"}
    got = client.get("/render", params=params).json()
    assert [d["target"] for d in got] == ["web.h0.cpu", "sumSeries(web.*.cpu)"]
    assert [v for v, _ in got[0]["datapoints"]] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [v for v, _ in got[1]["datapoints"]] == [3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    posted = client.post("/render", data={**params, "format": "json"}).json()
    assert posted == got


def test_render_formats_and_max_data_points(client: TestClient) -> None:
    base = {"target": "web.h1.cpu", "from": "-1min", "until": "-1s"}
    raw = client.get("/render", params={**base, "format": "raw"}).text
    assert raw == f"web.h1.cpu,{NOW - 60},{NOW},10|1.0,2.0,3.0,4.0,5.0,6.0\n"
    csv = client.get("/render", params={**base, "format": "csv"}).text.splitlines()
    assert len(csv) == 6 and csv[0].endswith(",1.0")
    small = client.get("/render", params={**base, "maxDataPoints": "2"}).json()
    assert len(small[0]["datapoints"]) <= 3


def test_find_expand_index_and_tags(client: TestClient) -> None:
    found = client.get("/metrics/find", params={"query": "web.*"}).json()
    assert [n["id"] for n in found] == ["web.h0", "web.h1", "web.h2"]
    completer = client.get("/metrics/find", params={"query": "web.h{0,1}.*", "format": "completer"})
    assert [m["path"] for m in completer.json()["metrics"]] == ["web.h0.cpu", "web.h1.cpu"]
    expanded = client.get("/metrics/expand", params={"query": "web.h[12].cpu"}).json()
    assert expanded == {"results": ["web.h1.cpu", "web.h2.cpu"]}
    assert "web.h0.cpu" in client.get("/metrics/index.json").json()
    assert client.get("/tags").json() == [{"tag": "dc"}, {"tag": "host"}, {"tag": "name"}]
    assert client.get("/tags/autoComplete/tags", params={"tagPrefix": "h"}).json() == ["host"]
    values = client.get("/tags/autoComplete/values", params={"tag": "dc", "expr": "host=a"})
    assert values.json() == ["x"]
    tagged = client.get(
        "/render", params={"target": "seriesByTag('dc=x')", "from": "-1min", "until": "-1s"}
    ).json()
    assert [d["target"] for d in tagged] == ["disk;dc=x;host=a"]


def test_events_api(client: TestClient) -> None:
    r = client.post("/events/", json={"what": "deploy", "tags": "web release", "when": NOW - 30})
    assert r.status_code == 200 and r.json()["tags"] == ["web", "release"]
    got = client.get("/events/get_data", params={"from": "-1h", "tags": "web"}).json()
    assert [(e["what"], e["when"]) for e in got] == [("deploy", NOW - 30)]
    assert client.get("/events/get_data", params={"from": "-1h", "tags": "db"}).json() == []
    bad = client.post("/events/", json={"tags": ["x"]})
    assert bad.status_code == 400 and '"what" is required' in bad.json()["error"]
    assert client.post("/events/", content=b"{nope").status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target": "nope(web.*)"}, "unknown function nope"),
        ({"target": "sumSeries(web.*"}, "expected"),
        ({"target": "web.*", "from": "last tuesday"}, "last tuesday"),
        ({"target": "web.*", "format": "png"}, "unknown format"),
        ({"target": "web.*.cpu", "maxDataPoints": "-3"}, "maxDataPoints"),
    ],
)
def test_bad_requests_are_400_with_a_message(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    r = client.get("/render", params=params)
    assert r.status_code == 400 and message in r.json()["error"]


def test_limits_name_themselves(store: SqlStore) -> None:
    app = create_app(store, Telemetry("t"), QuerySettings(max_series=2), clock=lambda: NOW)
    r = TestClient(app).get("/render", params={"target": "web.*.cpu", "from": "-1min"})
    assert r.status_code == 400 and "max_series" in r.json()["error"]
    app = create_app(store, Telemetry("t"), QuerySettings(max_points=5), clock=lambda: NOW)
    r = TestClient(app).get("/render", params={"target": "web.h0.cpu", "from": "-1min"})
    assert r.status_code == 400 and "max_points" in r.json()["error"]


def test_functions_version_metrics(client: TestClient) -> None:
    functions = client.get("/functions").json()
    assert {"sumSeries", "movingAverage", "aliasByNode", "timerPercentile"} <= set(functions)
    assert functions["sumSeries"]["params"][0]["type"] == "seriesList"
    assert client.get("/version").text == "1.1.10"
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_status_and_compact_report_storage(client: TestClient) -> None:
    status = client.get("/api/status").json()
    assert status["storage"]["points"]["rows"] == 19
    compacted = client.post("/api/compact").json()
    assert "points" in compacted["compacted"] and compacted["storage"]["points"]["parts"] == 1


@pytest.mark.integration
def test_a_store_that_went_away_answers_503_with_why(tmp_path: Path) -> None:
    server = ClickHouseServer(tmp_path / "clickhouse")
    server.start()
    store = open_server(server.address, StoragePolicy.from_files("", ""))
    try:
        client = TestClient(create_app(store, Telemetry("t"), QuerySettings(), clock=lambda: NOW))
        assert client.post("/events/", json={"what": "deploy"}).status_code == 200
        server.stop()
        r = client.post("/events/", json={"what": "deploy again"})
        assert r.status_code == 503 and "failed" in r.json()["error"]
        r = client.get("/render", params={"target": "web.*.cpu", "format": "json"})
        assert r.status_code == 503
        status = client.get("/api/status")  # still answers, saying what is wrong
        assert status.status_code == 200 and "error" in status.json()["storage"]
    finally:
        server.stop()
        store.close()
