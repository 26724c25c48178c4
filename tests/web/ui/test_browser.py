"""The web UI in a real browser against a real node: graphs, markers, live tail, errors, escaping."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.test_cli_e2e import Server
from tests.web.ui.conftest import (
    post_event,
    screenshot,
    send_entries,
    send_plaintext,
    wait_until,
)

pytestmark = pytest.mark.integration

STACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/shop/cart.py", line 42, in add\n'
    "    price = prices[sku]\n"
    "KeyError: 'sku-123'"
)
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold</b>'


def rendered_points(server: Server, target: str, start: int) -> int:
    r = server.get("/render", target=target, format="json", **{"from": str(start)})
    return sum(v is not None for s in r.json() for v, _ in s["datapoints"])


def test_dashboard_draws_every_point_and_the_deploy_marker(page: Page, server: Server) -> None:
    now = int(time.time()) // 10 * 10
    start = now - 300
    send_plaintext(
        server, [f"ui.web{h}.cpu {h * 10 + i} {start + 10 * i}" for h in (1, 2) for i in range(12)]
    )
    post_event(server, start + 55, "deploy shop 1.4.2 <b>now</b>", "deploy shop")
    assert wait_until(lambda: rendered_points(server, "ui.*.cpu", start - 10) == 24)
    dashboards = server.data_dir / "dashboards"
    dashboards.mkdir(exist_ok=True)
    doc = {
        "title": "Web <i>servers</i>",
        "from": str(start - 10),
        "until": str(now + 10),
        "events": "deploy",
        "panels": [
            {"title": "CPU", "targets": ["ui.*.cpu"]},
            {"title": "Sum", "targets": ["sumSeries(ui.*.cpu)"]},
        ],
    }
    (dashboards / "web.json").write_text(json.dumps(doc))

    page.goto("/ui/dashboards/web")
    panels = page.locator(".panel-graph")
    expect(panels).to_have_count(2)
    expect(panels.nth(0)).to_have_attribute("data-points", "12,12")
    expect(panels.nth(1)).to_have_attribute("data-points", "12")
    expect(page.locator("h2")).to_have_text("Web <i>servers</i>")
    markers = page.locator(".deploy-marker")
    expect(markers).to_have_count(2)  # one per panel
    legend = page.locator(".legend").first
    expect(legend).to_contain_text("ui.web2.cpu")
    # current, min, max, avg of ui.web2.cpu: 31, 20, 31, 25.5
    expect(legend.locator("tbody tr").nth(1).locator("td.num")).to_have_text(
        ["31", "20", "31", "25.5"]
    )
    box = markers.first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
    tip = page.locator(".marker-tip").first
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("deploy shop 1.4.2 <b>now</b>")
    screenshot(page, "dashboard")

    # Zoom by drag: the address takes the new absolute range.
    plot = page.locator(".u-over").first
    pbox = plot.bounding_box()
    assert pbox is not None
    page.mouse.move(pbox["x"] + pbox["width"] * 0.3, pbox["y"] + 20)
    page.mouse.down()
    page.mouse.move(pbox["x"] + pbox["width"] * 0.7, pbox["y"] + 20, steps=5)
    page.mouse.up()
    page.wait_for_url(lambda url: f"from={start - 10}&" not in url and "from=" in url)


def test_a_relative_range_refreshes_itself(page: Page) -> None:
    page.goto("/ui/dashboards/web?from=-10min&until=now&refresh=1s")
    view = page.locator(".view")
    expect(view).to_have_attribute("data-loaded", re.compile(r"\d+"))
    first = view.get_attribute("data-loaded")
    expect(view).not_to_have_attribute("data-loaded", first or "")
    expect(page.get_by_label("auto-refresh")).to_have_value("1s")


def test_dashboard_edits_are_saved_back_to_its_file(page: Page, server: Server) -> None:
    page.goto("/")  # a browser at the node's address lands on the dashboards
    page.wait_for_url("**/ui/dashboards")
    page.get_by_label("name").fill("db")
    page.get_by_label("title").fill("Databases")
    page.get_by_role("button", name="New dashboard").click()
    page.get_by_role("button", name="Add panel").click()
    page.get_by_label("panel title").fill("Queries")
    page.get_by_label("targets").fill("ui.*.cpu\nsumSeries(ui.*.cpu)")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".panel-title")).to_have_text(["Queries"])
    saved = json.loads((server.data_dir / "dashboards" / "db.json").read_text())
    assert saved["panels"] == [{"title": "Queries", "targets": ["ui.*.cpu", "sumSeries(ui.*.cpu)"]}]


def test_live_tail_shows_a_line_within_a_second(page: Page, server: Server) -> None:
    page.goto("/ui/logs?live=1&host=tail01")
    expect(page.locator(".tail-status")).to_have_text("live")
    started = time.monotonic()
    send_entries(
        server, {"host": "tail01", "app": "shop", "message": "payment timeout for order 77"}
    )
    page.locator(".log-entry", has_text="payment timeout for order 77").wait_for(timeout=1000)
    latency = time.monotonic() - started
    assert latency < 1, f"the line took {latency:.3f} s to show"
    screenshot(page, "logs-live-tail")


def test_live_tail_resumes_after_a_disconnect(page: Page, server: Server) -> None:
    sockets: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # messages pass both ways; closing ``ws`` drops the page's side
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/api/logs/tail"), through)
    page.goto("/ui/logs?live=1&host=resume01")
    expect(page.locator(".tail-status")).to_have_text("live")
    send_entries(server, {"host": "resume01", "message": "before"})
    expect(page.locator(".log-message")).to_have_text(["before"])
    sockets[0].close()
    expect(page.locator(".tail-status")).to_contain_text("reconnecting")
    send_entries(server, {"host": "resume01", "message": "while away"})
    expect(page.locator(".tail-status")).to_have_text("live")
    send_entries(server, {"host": "resume01", "message": "after"})
    expect(page.locator(".log-message")).to_have_text(["before", "while away", "after"])
    assert len(sockets) == 2


def test_a_burst_beyond_the_tail_buffer_shows_what_was_skipped(page: Page, server: Server) -> None:
    page.goto("/ui/logs?live=1&host=burst01")
    expect(page.locator(".tail-status")).to_have_text("live")
    send_entries(server, *({"host": "burst01", "message": f"burst {i}"} for i in range(500)))
    expect(page.locator(".log-marker.skipped")).to_contain_text("entries skipped")
    expect(page.locator(".log-entry").last).to_have_text(re.compile("burst 499$"))
    skipped = sum(
        int(t.split()[0]) for t in page.locator(".log-marker.skipped").all_text_contents()
    )
    assert skipped + page.locator(".log-entry").count() == 500


def test_log_lines_with_markup_are_shown_as_text(page: Page, server: Server) -> None:
    send_entries(server, {"host": "evil01", "app": "shop", "message": HOSTILE})
    assert wait_until(
        lambda: server.get("/api/logs/search", host="evil01", **{"from": "-1h"}).json()["entries"]
    )
    page.goto("/ui/logs?from=-1h&host=evil01")
    message = page.locator(".log-message").first
    expect(message).to_have_text(HOSTILE)
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".log-results b, .log-results img, .log-results script").count() == 0
    screenshot(page, "logs-search")


def test_error_group_shows_its_stack_trace(page: Page, server: Server) -> None:
    send_entries(server, {"host": "web03", "app": "shop", "message": STACK})

    def groups() -> list[dict[str, str]]:
        found: list[dict[str, str]] = server.get("/api/errors", **{"from": "-1h"}).json()["groups"]
        return [g for g in found if "KeyError" in g["title"]]

    found = wait_until(groups)
    assert found
    # The group shows before the log store has written its sample.
    assert wait_until(lambda: server.get(f"/api/errors/{found[0]['id']}").json()["sample"])
    page.goto("/ui/errors")
    row = page.locator(".error-group", has_text="KeyError")
    expect(row.locator(".sparkline")).to_have_count(1)
    screenshot(page, "errors")
    row.get_by_role("link").click()
    stack = page.locator(".stack")
    expect(stack).to_have_text(STACK)
    expect(page.locator(".fingerprints li")).to_have_count(1)
    screenshot(page, "error-group")


def test_error_groups_are_merged_and_split_from_the_page(page: Page, server: Server) -> None:
    send_entries(
        server,
        {"host": "web04", "app": "pay", "status": 502, "message": "upstream refused"},
        {"host": "web04", "app": "pay", "status": 504, "message": "upstream timed out"},
    )

    def groups() -> list[dict[str, str]]:
        found: list[dict[str, str]] = server.get("/api/errors", app="pay").json()["groups"]
        return found if len(found) == 2 else []

    assert wait_until(groups)
    page.goto("/ui/errors")
    for title in ("upstream refused", "upstream timed out"):
        page.locator(".error-group", has_text=title).get_by_role("checkbox").check()
    page.get_by_role("button", name="Merge selected").click()
    fingerprints = page.locator(".fingerprints li")
    expect(fingerprints).to_have_count(2)
    fingerprints.first.get_by_role("button", name="Split out").click()
    expect(fingerprints).to_have_count(1)


def test_metric_browser_graphs_a_clicked_metric_and_wraps_it(page: Page, server: Server) -> None:
    send_plaintext(server, [f"ui.browse.load 1 {int(time.time()) - 20}"])
    assert wait_until(lambda: server.get("/metrics/find", query="ui.browse.*").json())
    page.goto("/ui/metrics")
    page.locator("button[data-path='ui']").click()
    page.locator("button[data-path='ui.browse']").click()
    page.locator("button[data-path='ui.browse.load']").click()
    expect(page.locator(".target-input")).to_have_value("ui.browse.load")
    page.get_by_label("function").select_option("scale")
    page.get_by_label("arguments").fill("10")
    page.get_by_role("button", name="Apply function").click()
    expect(page.locator(".target-input")).to_have_value("scale(ui.browse.load, 10)")
    page.wait_for_url(lambda url: "target=scale" in url)
    expect(page.locator(".panel-graph")).to_have_attribute("data-points", "1")
    screenshot(page, "metrics")


def test_sources_page_lists_what_reports(page: Page, server: Server) -> None:
    send_entries(server, {"host": "web09", "app": "billing", "kind": "heartbeat"})
    assert wait_until(
        lambda: any(s["host"] == "web09" for s in server.get("/api/sources").json()["sources"])
    )
    page.goto("/ui/sources")
    row = page.locator("tr.source", has_text="web09")
    expect(row).to_contain_text("1 heartbeat")
    screenshot(page, "sources")


def test_watching_pages_show_new_data_without_a_reload(page: Page, server: Server) -> None:
    page.goto("/ui/sources?refresh=1s")
    expect(page.get_by_label("auto-refresh")).to_have_value("1s")
    send_entries(server, {"host": "web31", "app": "late", "kind": "heartbeat"})
    row = page.locator("tr.source", has_text="web31")
    expect(row).to_contain_text("1 heartbeat", timeout=20_000)
    page.get_by_label("auto-refresh").select_option("")
    page.wait_for_url("**refresh=off**")


def held(page: Page, seconds: float = 2.5) -> bool:
    """Whether the view did not load its data again for ``seconds`` (its interval is 1 s)."""
    view = page.locator(".view")
    before = view.get_attribute("data-loaded")
    page.wait_for_timeout(seconds * 1000)
    return view.get_attribute("data-loaded") == before


def test_what_someone_is_doing_on_a_page_holds_its_refresh(page: Page, server: Server) -> None:
    send_entries(server, {"host": "web05", "app": "hold", "status": 500, "message": "hold me"})
    assert wait_until(lambda: server.get("/api/errors", app="hold").json()["groups"])
    page.goto("/ui/errors?refresh=1s")
    view = page.locator(".view")
    box = page.locator(".error-group", has_text="hold me").get_by_role("checkbox")
    box.check()  # choosing rows to merge
    assert held(page)
    expect(box).to_be_checked()
    box.uncheck()
    expect(view).not_to_have_attribute("data-loaded", view.get_attribute("data-loaded") or "")

    page.goto("/ui/alerts?refresh=1s")
    expect(view).to_have_attribute("data-loaded", re.compile(r"\d+"))
    page.get_by_role("button", name="New silence").click()  # writing a silence
    assert held(page)
    expect(page.get_by_label("matchers")).to_be_visible()


def test_an_alert_is_acknowledged_and_silenced_from_the_page(page: Page, server: Server) -> None:
    rules = server.data_dir / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "ui.toml").write_text(
        '[[rule]]\nname = "ui-load"\ntarget = "ui.alert.load"\ncritical = 5\ninterval = "1s"\n'
    )
    assert httpx.post(server.url + "/api/alerts/reload").status_code == 200
    send_plaintext(server, [f"ui.alert.load 9 {int(time.time())}"])

    def critical() -> bool:
        alerts = server.get("/api/alerts").json()["alerts"]
        return any(a["rule"] == "ui-load" and a["state"] == "CRITICAL" for a in alerts)

    assert wait_until(critical)
    page.goto("/ui/alerts")
    row = page.locator("tr.alert-row", has_text="ui-load")
    expect(row.locator(".state")).to_have_text("CRITICAL")
    row.get_by_role("button", name="Ack").click()
    page.get_by_label("reason").fill("looking at it")
    page.get_by_role("button", name="Acknowledge").click()
    expect(row.locator(".badge.acknowledged")).to_be_visible()
    row.get_by_role("button", name="Silence").click()
    expect(page.get_by_label("matchers")).to_have_value(re.compile("rule=ui-load"))
    page.get_by_label("reason").fill("maintenance")
    page.get_by_role("button", name="Add silence").click()
    expect(row.locator(".badge.silenced")).to_be_visible()
    silences = page.locator("table.silences tbody tr")
    expect(silences).to_have_count(1)
    expect(silences).to_contain_text("maintenance")
    screenshot(page, "alerts")
    silences.get_by_role("button", name="Remove").click()
    expect(page.locator("table.silences")).to_have_count(0)
    expect(row.locator(".badge.silenced")).to_have_count(0)
    # A node without the alert role answers 404.
    page.route("**/api/alerts", lambda route: route.fulfill(status=404, json={"error": "no"}))
    page.reload()
    expect(page.locator(".notice")).to_have_text("Alerting is not available on this node.")


@pytest.mark.parametrize("width", [1280, 1024])
def test_pages_fit_a_laptop_screen(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 720})
    for path in (
        "/ui/dashboards/web",
        "/ui/logs?from=-1h",
        "/ui/errors",
        "/ui/metrics",
        "/ui/sources",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a {width}-px window"
        screenshot(page, f"{width}{path.replace('/', '-').split('?')[0]}")
