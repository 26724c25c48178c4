"""``vigil alerts`` against a real ``vigil serve`` subprocess, with SIGHUP reloads."""

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli_e2e import Server, start_server, stop_server, wait_for

pytestmark = pytest.mark.integration

RULE = """
[[rule]]
name = "disk-free"
target = "servers.*.disk.free"
direction = "below"
warning = 20
critical = 10
interval = "1s"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("alerts")
    (data / "rules").mkdir()
    (data / "rules" / "disk.toml").write_text(RULE)
    s = start_server(data)
    yield s
    if s.proc.poll() is None:
        stop_server(s)


def vigil(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_list_check_silence_ack_and_report(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["graphite"])) as s:
        s.sendall(f"servers.db1.disk.free 5 {int(time.time())}\n".encode())
    assert wait_for(lambda: "CRITICAL" in vigil(server, "alerts", "list").stdout)
    listing = vigil(server, "alerts", "list").stdout
    assert "disk-free" in listing and "servers.db1.disk.free" in listing
    check = vigil(server, "alerts", "check", "disk-free")
    assert check.returncode == 0 and "servers.db1.disk.free = 5 <= 10" in check.stdout
    silence = vigil(
        server,
        "alerts",
        "silence",
        "--match",
        "rule=disk-*",
        "--for",
        "1h",
        "--reason",
        "resize",
        "--json",
    )
    assert silence.returncode == 0 and json.loads(silence.stdout)["reason"] == "resize"
    assert "[silenced]" in vigil(server, "alerts", "list").stdout
    ack = vigil(server, "alerts", "ack", "disk-free", "servers.db1.disk.free", "--reason", "on it")
    assert ack.returncode == 0
    assert wait_for(lambda: "ack" in vigil(server, "alerts", "history", "--from", "-10min").stdout)
    report = vigil(server, "alerts", "report", "--since", "7d")
    assert report.returncode == 0 and "disk-free" in report.stdout
    missing = vigil(server, "alerts", "check", "nope")
    assert missing.returncode == 1 and "no alert rule named 'nope'" in missing.stderr


def test_sighup_reloads_and_a_bad_file_keeps_the_old_rules(server: Server) -> None:
    rules = server.data_dir / "rules"
    (rules / "alive.yaml").write_text("rule:\n  - name: web-alive\n    heartbeat: web*\n")
    server.proc.send_signal(signal.SIGHUP)

    def names() -> list[str]:
        listed = json.loads(vigil(server, "alerts", "rules", "--json").stdout)["rules"]
        return sorted(r["name"] for r in listed)

    assert wait_for(lambda: names() == ["disk-free", "web-alive"])
    (rules / "broken.toml").write_text('[[rule]]\nname = "x"\n')
    server.proc.send_signal(signal.SIGHUP)
    reload = vigil(server, "alerts", "reload")
    assert (
        reload.returncode == 1 and "broken.toml:2: rule 'x' needs exactly one of" in reload.stderr
    )
    assert names() == ["disk-free", "web-alive"]
    (rules / "broken.toml").unlink()
    assert vigil(server, "alerts", "reload").returncode == 0
    assert server.proc.poll() is None


def test_the_rules_dir_defaults_to_data_dir_rules(server: Server) -> None:
    assert Path(server.data_dir / "rules" / "disk.toml").exists()
    assert "disk-free" in vigil(server, "alerts", "rules").stdout
