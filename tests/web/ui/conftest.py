"""Browser tests of the web UI: Debian's chromium, driven by Playwright, against a real ``vigil serve``.

One node and one browser per test module (each start costs seconds on two
cores). Data goes in over the real protocols: Graphite plaintext, the
event-log protocol, the events API. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.test_cli_e2e import Server, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium keeps dialling Google's
# hosts, which this closed network refuses (see .library/env machines notes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``vigil serve`` on free ports, stopped after the module.

    Live-tail subscribers buffer 50 entries, so a burst shows the skipped marker.
    """
    s = start_server(tmp_path_factory.mktemp("vigil-ui"), "--tail-subscriber-entries", "50")
    yield s
    if s.proc.poll() is None:
        stop_server(s)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless; the tests never download a browser."""
    if not CHROMIUM.exists():
        pytest.fail(
            "/usr/bin/chromium is missing: `make test` installs it (apt-get install chromium)"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh page at laptop size, failing the test on any script error it shows."""
    context = browser.new_context(viewport={"width": 1280, "height": 720}, base_url=server.url)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    """Keep a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def send_plaintext(server: Server, lines: list[str]) -> None:
    """Graphite plaintext over TCP."""
    with socket.create_connection(("127.0.0.1", server.ports["graphite"])) as sock:
        sock.sendall("".join(line + "\n" for line in lines).encode())


def send_entries(server: Server, *entries: dict[str, Any]) -> None:
    """Event-log protocol over TCP, waiting for the ack of every entry."""
    payload = b"".join(json.dumps({"ts": time.time(), **e}).encode() + b"\n" for e in entries)
    with socket.create_connection(("127.0.0.1", server.ports["eventlog"])) as sock:
        sock.sendall(payload)
        reader = sock.makefile("rb")
        while True:
            reply = json.loads(reader.readline())
            assert "error" not in reply, reply
            if reply.get("ack", 0) >= len(entries):
                return


def post_event(server: Server, when: int, what: str, tags: str) -> None:
    """A timeline event over the Graphite events API."""
    r = httpx.post(server.url + "/events/", json={"when": when, "what": what, "tags": tags})
    assert r.status_code == 200, r.text


def wait_until(check: Any, timeout: float = 20) -> Any:
    """Poll ``check`` until it is truthy (the store writes within about a second)."""
    deadline = time.time() + timeout
    while not (result := check()) and time.time() < deadline:
        time.sleep(0.1)
    return result
