"""Certificates for the TLS tests, made at test time by ``trustme`` (none are committed).

``issue(directory)`` writes a test CA, a server certificate for 127.0.0.1
signed by it, a client certificate signed by it, and a second CA that signed
nothing (a wrong CA), all as PEM files:

    files = issue(tmp_path)
    server: files.server_cert, files.server_key (files.ca to verify clients)
    client: files.ca to verify the server, files.client_cert, files.client_key
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trustme


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files ``issue`` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


def issue(directory: Path) -> TlsFiles:
    """A fresh CA with a server (127.0.0.1, localhost) and a client certificate, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(*(directory / f"{name}.pem" for name in (
        "ca", "server-cert", "server-key", "client-cert", "client-key", "wrong-ca",
    )))  # fmt: skip
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(files.ca))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client = ca.issue_cert("vigil-client")
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    trustme.CA().cert_pem.write_to_path(str(files.wrong_ca))
    return files
