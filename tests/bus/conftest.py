"""Fixtures of real nats-server processes, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bus.natsservers import NatsCluster, NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """One JetStream server with file storage under ``tmp_path``."""
    server = NatsServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A 3-node JetStream cluster, all members running."""
    cluster = NatsCluster(tmp_path)
    cluster.start()
    yield cluster
    cluster.stop()
