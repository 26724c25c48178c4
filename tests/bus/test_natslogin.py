"""Logging in to NATS: user and password, TLS both ways, and the messages of a refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.bus.natsservers import NatsServer
from tests.nodes import node_settings
from tests.tlsfiles import TlsFiles, issue
from vigil.bus.destination import Overflow
from vigil.bus.jetstream import JetStream, JetStreamError
from vigil.bus.natslogin import NatsLogin, refusal, shown
from vigil.node import Node
from vigil.settings import BusSettings

USER, PASSWORD = "vigil", "nats-secret"


def bus_login(files: TlsFiles, **changes: str) -> dict[str, str]:
    """The bus settings of a login the secure server accepts, with ``changes``."""
    return {
        "bus_nats_user": USER, "bus_nats_password": PASSWORD,
        "bus_nats_ca_file": str(files.ca), "bus_nats_cert_file": str(files.client_cert),
        "bus_nats_key_file": str(files.client_key),
    } | changes  # fmt: skip


@pytest.fixture
def secure_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A JetStream server requiring TLS with client certificates, and user vigil's password."""
    server = NatsServer(tmp_path, tls=issue(tmp_path / "tls"), login=(USER, PASSWORD))
    server.start()
    yield server
    server.stop()


def test_refusal_names_the_settings_of_the_likeliest_cause() -> None:
    auth = Exception("nats: 'Authorization Violation'")
    assert "bus_nats_password" in refusal([BrokenPipeError(), auth])
    assert refusal([ConnectionResetError()]) == ""


def test_shown_masks_passwords_in_urls() -> None:
    assert shown("nats://u:pw@n1:4222,nats://n2:4222") == "nats://u:***@n1:4222,nats://n2:4222"


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"bus_nats_ca_file": "/missing.pem"}, "bus_nats_ca_file"),
     ({"bus_nats_cert_file": "/missing.pem"}, "bus_nats_cert_file")],
)  # fmt: skip
def test_an_unreadable_tls_file_names_its_setting(settings: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        NatsLogin.from_settings(BusSettings(**settings)).options()  # type: ignore[arg-type]


@pytest.mark.integration
async def test_the_bus_works_over_tls_with_a_client_certificate_and_a_password(
    secure_nats: NatsServer,
) -> None:
    assert secure_nats.tls is not None
    login = NatsLogin.from_settings(BusSettings(**bus_login(secure_nats.tls)))  # type: ignore[arg-type]
    link = await JetStream.connect(secure_nats.url, login=login, timeout=2.0)
    try:
        store = await link.destination("store", 1 << 20, Overflow.BLOCK)
        sent = pa.table({"v": pa.array([1, 2, 3], pa.int64())})
        await store.put(sent)
        delivery = await store.get(2.0)
        assert delivery is not None and delivery.batch.equals(sent)
        await store.done([delivery])
    finally:
        await link.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("wrong", "named"),
    [("bus_nats_ca_file", "bus_nats_ca_file"), ("bus_nats_password", "bus_nats_password"),
     ("bus_nats_cert_file", "bus_nats_cert_file")],
)  # fmt: skip
async def test_a_refused_login_fails_quickly_naming_the_setting_to_fix(
    secure_nats: NatsServer, wrong: str, named: str
) -> None:
    assert secure_nats.tls is not None
    change = {
        "bus_nats_ca_file": {"bus_nats_ca_file": str(secure_nats.tls.wrong_ca)},
        "bus_nats_password": {"bus_nats_password": "nope"},
        "bus_nats_cert_file": {"bus_nats_cert_file": "", "bus_nats_key_file": ""},
    }[wrong]
    login = NatsLogin.from_settings(BusSettings(**bus_login(secure_nats.tls, **change)))  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(JetStreamError, match=named):
        await JetStream.connect(secure_nats.url, login=login, connect_seconds=2.0)
    assert time.monotonic() - started < 3


@pytest.mark.integration
async def test_a_node_logs_in_with_the_bus_settings(
    secure_nats: NatsServer, tmp_path: Path
) -> None:
    assert secure_nats.tls is not None
    login = bus_login(secure_nats.tls, bus_nats_password="nope")
    node = Node(node_settings(tmp_path / "data", bus_nats=secure_nats.url, **login))
    with pytest.raises(ConnectionError, match="bus_nats_password"):
        await node.start()
