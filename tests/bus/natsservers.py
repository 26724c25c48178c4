"""Real nats-server processes for the bus tests: one node or a 3-node JetStream cluster.

Each server listens on free loopback ports and keeps its JetStream files in
a temporary directory; ``stop`` (or ``kill``) ends it, ``start`` brings it
back on the same ports and files, as a restart after a crash would. A
server given ``tls`` files requires TLS with ``tls.server_cert`` and client
certificates signed by ``tls.ca``; one given ``login`` (user, password)
requires that login.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.tlsfiles import TlsFiles

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """One nats-server with JetStream, configured by a file in ``directory``."""

    def __init__(
        self,
        directory: Path,
        name: str = "n1",
        cluster: str = "",
        tls: TlsFiles | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.tls = tls
        self.login = login
        self.port = free_port()
        self.cluster_port = free_port()
        self.config = directory / f"{name}.conf"
        self.name = name
        self._cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self, routes: list[int]) -> None:
        """The server's configuration; ``routes`` are the cluster ports of all members."""
        lines = [
            f"server_name: {self.name}",
            "host: 127.0.0.1",
            f"port: {self.port}",
            f'jetstream {{ store_dir: "{self.directory / self.name}" }}',
        ]
        if self.tls:
            lines.append(
                f'tls {{ cert_file: "{self.tls.server_cert}", key_file: "{self.tls.server_key}",'
                f' ca_file: "{self.tls.ca}", verify: true }}'
            )
        if self.login:
            lines.append(
                f'authorization {{ user: "{self.login[0]}", password: "{self.login[1]}" }}'
            )
        if routes:
            listed = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
            lines.append(
                f"cluster {{ name: {self._cluster}, host: 127.0.0.1, port: {self.cluster_port},"
                f" routes: [{listed}] }}"
            )
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        if not self.config.exists():
            self.write_config([])
        log = (self.directory / f"{self.name}.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [NATS_SERVER, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"nats-server {self.name} did not start: see {self.directory}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the server (SIGKILL for a crash) and wait for it."""
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed."""
        self.stop(signal.SIGKILL)


class NatsCluster:
    """Three JetStream servers routed to each other on loopback."""

    def __init__(self, directory: Path) -> None:
        self.servers = [NatsServer(directory, f"n{i}", cluster="vigil") for i in (1, 2, 3)]
        routes = [s.cluster_port for s in self.servers]
        for s in self.servers:
            s.write_config(routes)

    @property
    def urls(self) -> str:
        """Every member, comma-separated, as ``bus_nats`` takes them."""
        return ",".join(s.url for s in self.servers)

    def start(self) -> None:
        """Start all three members."""
        for s in self.servers:
            s.start()

    def stop(self) -> None:
        """Stop whatever members still run."""
        for s in self.servers:
            s.stop()

    def by_name(self, name: str) -> NatsServer:
        """The member called ``name`` (n1, n2, n3)."""
        return next(s for s in self.servers if s.name == name)
