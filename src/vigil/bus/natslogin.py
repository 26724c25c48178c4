"""How the bus logs in to NATS (user and password, TLS), and what a refused connection means.

nats-py switches a connection to TLS when the server asks for it (its
``tls { }`` block), with the context made here: the server's certificate is
verified with ``bus_nats_ca_file`` (the system's CAs without it), and
``bus_nats_cert_file`` is shown to servers that verify clients. A server
that does not ask for TLS gets plain text: nats-py cannot insist.

The user and password go in every server's CONNECT; a ``user:password@`` in
the ``bus_nats`` URLs works as well, but ends up wherever URLs are shown.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from vigil.settings import BusSettings

# Causes of a failed connection, likeliest first, and the settings that fix each.
_CAUSES: list[tuple[Callable[[Exception], bool], str]] = [
    (
        lambda e: isinstance(e, ssl.SSLCertVerificationError),
        "the server's TLS certificate is not trusted: set bus_nats_ca_file"
        " to the CA certificate (PEM) that signed it",
    ),
    (
        lambda e: "authorization violation" in str(e).lower(),
        "the server refused the login: check bus_nats_user and bus_nats_password",
    ),
    (
        lambda e: isinstance(e, ssl.SSLError),  # the server's alert about our certificate
        "TLS failed: a server that verifies clients needs bus_nats_cert_file and"
        " bus_nats_key_file, a certificate signed by a CA it trusts",
    ),
]


@dataclasses.dataclass(frozen=True)
class NatsLogin:
    """The ``bus_nats_*`` login settings, turned into ``nats.connect``'s options."""

    user: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_settings(cls, bus: BusSettings) -> NatsLogin:
        """The login the bus settings describe."""
        return cls(
            bus.bus_nats_user,
            bus.bus_nats_password,
            bus.bus_nats_ca_file,
            bus.bus_nats_cert_file,
            bus.bus_nats_key_file,
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect``; ValueError names a setting whose file fails."""
        options: dict[str, Any] = {}
        if self.user:
            options |= {"user": self.user, "password": self.password}
        if self.ca_file or self.cert_file:
            options["tls"] = self._tls()
        return options

    def _tls(self) -> ssl.SSLContext:
        """The context that verifies servers with ``ca_file`` and shows ``cert_file``."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file or None)
        except OSError as e:
            raise ValueError(f"bus_nats_ca_file = {self.ca_file!r}: cannot use it ({e})") from None
        if self.cert_file:
            try:
                context.load_cert_chain(self.cert_file, self.key_file or None)
            except OSError as e:
                raise ValueError(
                    f"bus_nats_cert_file = {self.cert_file!r}, bus_nats_key_file ="
                    f" {self.key_file!r}: cannot use them ({e})"
                ) from None
        return context


def refusal(errors: Iterable[Exception]) -> str:
    """What the errors met while connecting mean, and which settings to check; '' if unknown.

    >>> refusal([BrokenPipeError(), Exception("nats: 'Authorization Violation'")])
    "the server refused the login: check bus_nats_user and bus_nats_password (nats: 'Authorization Violation')"
    """
    errors = list(errors)
    for matches, advice in _CAUSES:
        for e in errors:
            if matches(e):
                return f"{advice} ({e})"
    return ""


def shown(servers: str) -> str:
    """``servers`` with the passwords in URLs masked, for messages and logs.

    >>> shown("nats://vigil:secret@n1:4222,nats://n2:4222")
    'nats://vigil:***@n1:4222,nats://n2:4222'
    """
    return re.sub(r"(//[^/:@,]*):[^/@,]*@", r"\1:***@", servers)
