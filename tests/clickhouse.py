"""Real clickhouse-server processes for tests: one server, or a 2-shard cluster on loopback.

Each server gets free loopback ports and a directory of its own, configured
from ``tests/clickhouse-server.xml``; all servers started together form the
cluster ``vigil`` in every one's ``remote_servers`` (one shard each), so any
of them can be the initiator. ``reset`` drops what Vigil created, for a
fresh store on the same servers. A server given ``tls`` files also listens
for TLS on ``tls_port`` (native protocol), with the certificate of
``tls.server_cert``.

    cluster = ClickHouseCluster(tmp_path, shards=2)
    cluster.start()
    store = open_server(cluster.address, policy, cluster=cluster.name)
    ...
    cluster.stop()
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError

from tests.bus.natsservers import free_port
from tests.tlsfiles import TlsFiles
from vigil.store.clickhouse_server import ServerAddress

CLICKHOUSE_SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
HERE = Path(__file__).parent
CONFIG = HERE / "clickhouse-server.xml"
USERS = HERE / "clickhouse-users.xml"
# The secure native port: the server presents its certificate and asks none of clients.
TLS = """    <tcp_port_secure>{port}</tcp_port_secure>
    <openSSL><server>
        <certificateFile>{tls.server_cert}</certificateFile>
        <privateKeyFile>{tls.server_key}</privateKeyFile>
        <verificationMode>none</verificationMode>
        <loadDefaultCAFile>false</loadDefaultCAFile>
    </server></openSSL>"""
# The databases Vigil creates (``schema.DB``, ``clickhouse_cluster.LOCAL_DB``).
DATABASES = ("vigil", "vigil_local")


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class ClickHouseServer:
    """One clickhouse-server with its data in ``directory``, and a TLS port with ``tls``."""

    def __init__(self, directory: Path, tls: TlsFiles | None = None) -> None:
        self.directory = directory
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> ServerAddress:
        """Where Vigil connects (native protocol, user ``default``)."""
        return ServerAddress("127.0.0.1", self.tcp_port)

    def write_config(self, shard_ports: list[int]) -> None:
        """The config: this server's ports, and cluster ``vigil`` of ``shard_ports``."""
        shards = "\n".join(
            "            <shard><replica><host>127.0.0.1</host>"
            f"<port>{port}</port></replica></shard>"
            for port in shard_ports
        )
        text = (
            CONFIG.read_text()
            .replace("@DIR@", str(self.directory))
            .replace("@HTTP_PORT@", str(self.http_port))
            .replace("@TCP_PORT@", str(self.tcp_port))
            .replace("@SHARDS@", shards)
            .replace("@TLS@", TLS.format(port=self.tls_port, tls=self.tls) if self.tls else "")
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "config.xml").write_text(text)
        shutil.copy(USERS, self.directory / "users.xml")

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it answers queries."""
        if not (self.directory / "config.xml").exists():
            self.write_config([self.tcp_port])
        with (self.directory / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                [CLICKHOUSE_SERVER, f"--config-file={self.directory / 'config.xml'}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if not _listening(self.tcp_port):  # the driver logs every refused connection
                time.sleep(0.1)
                continue
            client = self.client()
            try:
                client.execute("SELECT 1")
                return
            except (DriverError, OSError, EOFError):
                time.sleep(0.1)
            finally:
                client.disconnect()
        self.stop()
        raise RuntimeError(f"clickhouse-server did not start: see {self.directory}/log")

    def client(self) -> Client:
        """A driver client for checks and clean-ups."""
        return Client("127.0.0.1", self.tcp_port, connect_timeout=2)

    def reset(self) -> None:
        """Drop Vigil's databases."""
        client = self.client()
        try:
            for db in DATABASES:
                client.execute(f"DROP DATABASE IF EXISTS {db}")
        finally:
            client.disconnect()

    def stop(self) -> None:
        """End the server (SIGKILL after 30 s) and wait for it."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class ClickHouseCluster:
    """``shards`` servers, each listing all of them as the shards of cluster ``vigil``."""

    name = "vigil"

    def __init__(self, directory: Path, shards: int = 2) -> None:
        self.servers = [ClickHouseServer(directory / f"ch{i}") for i in range(1, shards + 1)]
        ports = [s.tcp_port for s in self.servers]
        for server in self.servers:
            server.write_config(ports)

    @property
    def address(self) -> ServerAddress:
        """The first server, which Vigil connects to (any would do)."""
        return self.servers[0].address

    def start(self) -> None:
        """Start every server (stopping those started if one fails)."""
        try:
            for server in self.servers:
                server.start()
        except RuntimeError:
            self.stop()
            raise

    def reset(self) -> None:
        """Drop Vigil's databases on every server."""
        for server in self.servers:
            server.reset()

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers:
            server.stop()
