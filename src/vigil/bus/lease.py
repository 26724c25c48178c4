"""A role only one process may hold across the NATS cluster (alerting), as a lease.

The lease is a key of a JetStream key-value bucket whose entries expire
``ttl`` seconds after their last write; its holder rewrites it every
``ttl / 4``. Taking it fails while another node's lease is fresh, so a
second alert process refuses to start rather than send every notice twice.
A holder names itself (the alert process: its node, host and data
directory), so one started again after a crash takes its own lease back
at once, and a lease left by a process that is gone frees itself within
``ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from vigil.bus.jetstream import JetStream, JetStreamError

log = logging.getLogger(__name__)


class LeaseHeld(JetStreamError):
    """Another node holds the lease; the message names it."""


class Lease:
    """``role`` held by ``holder`` until ``release`` (or until renewals stop for ``ttl``)."""

    def __init__(self, kv: KeyValue, role: str, holder: str, revision: int, ttl: float) -> None:
        self.role = role
        self.holder = holder
        self._kv = kv
        self._revision = revision
        self._ttl = ttl
        self.held = True  # False while another process has it: stand by
        self._renewer = asyncio.create_task(self._renew())

    @classmethod
    async def take(cls, link: JetStream, role: str, holder: str, ttl: float = 20.0) -> Lease:
        """Take ``role`` for ``holder``; ``LeaseHeld`` if another holder's lease is fresh."""
        bucket = f"{link.prefix}-leases"
        try:  # made once; a bucket made with another ttl is used as it is
            kv = await link.js.key_value(bucket)
        except BucketNotFoundError:
            kv = await link.js.create_key_value(bucket=bucket, ttl=ttl)
        value = holder.encode()
        try:
            revision = await kv.create(role, value)
        except KeyWrongLastSequenceError:
            try:
                entry = await kv.get(role)
            except KeyNotFoundError:  # deleted or expired meanwhile: try once more
                revision = await kv.create(role, value)
            else:
                if entry.value != value:
                    raise LeaseHeld(
                        f"{(entry.value or b'').decode()} runs the {role} role "
                        f"(lease in bucket {link.prefix}-leases); only one process may: "
                        f"stop it, or leave {role} out of this node's roles"
                    ) from None
                assert entry.revision is not None
                revision = await kv.update(role, value, last=entry.revision)
        log.info("%s lease taken by %s", role, holder)
        return cls(kv, role, holder, revision, ttl)

    async def _renew(self) -> None:
        value = self.holder.encode()
        while True:
            await asyncio.sleep(self._ttl / 4)
            try:
                if self.held:
                    self._revision = await self._kv.update(self.role, value, last=self._revision)
                else:  # lost: taken back once the other holder's lease is gone
                    self._revision = await self._kv.create(self.role, value)
                    self.held = True
                    log.warning("%s lease taken back by %s", self.role, self.holder)
            except KeyWrongLastSequenceError:
                if self.held:
                    log.error(
                        "%s lease lost to another process (NATS was away longer than %.0f s?);"
                        " %s stands by until it is free",
                        self.role,
                        self._ttl,
                        self.holder,
                    )
                self.held = False
            except (nats.errors.Error, TimeoutError) as e:  # NATS away: try again next round
                log.warning("%s lease not renewed: %r", self.role, e)

    async def abandon(self) -> None:
        """Stop renewing without freeing the role: it frees itself after ``ttl``."""
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer

    async def release(self) -> None:
        """Stop renewing and free the role for another process now."""
        await self.abandon()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await self._kv.delete(self.role)
