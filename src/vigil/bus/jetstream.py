"""The bus on NATS JetStream: a destination's queue is a stream read by a durable consumer.

With ``bus_nats`` set, a destination's bounded buffer lives in NATS instead
of this process, so that roles in other processes (or machines) can publish
to it and consume from it, and a crash loses nothing that was acknowledged.

Layout, for destination ``store`` and the default prefix ``vigil``::

    stream   vigil-store        subjects vigil.store.points, .logs, .sketches, .other
    consumer store (durable, pull, explicit acks)

Processes that only publish to a destination (an ingest node) create its
stream and, for a shared destination, its durable consumer too: retention is
by interest, so a batch published while no consumer exists would be dropped
at once, and the store node may start after the ingest nodes. A destination
that every consuming process reads in full (the live tail) has a consumer of
its own per process instead: ``<name>-<node>-<random>``, new batches only,
deleted when the process stops and by the server ``ack_wait`` seconds after
the process died; publishers make none, so with nobody tailing a batch is
dropped at once, as a live tail wants.

One stream per destination, with a subject per record kind, because
JetStream keeps limits and the discard policy per stream: a destination's
policy must not apply to the others (the fault domains of the in-process
bus), and one consumer reading one stream gets every kind in publish order.
The policies map onto the stream's configuration:

=========  ===========================================================
block      discard new; the publisher retries until the limit has room
drop_head  discard old (the server removes the oldest batches)
drop_tail  discard new (the publisher counts the refused batch)
spill      file storage, discard new at ``spool_bytes``; a refused
           durable put raises ``BusFull``
=========  ===========================================================

The limit is ``capacity_bytes`` (``spool_bytes`` for ``spill``), counted in
stored bytes, which are compressed (``codec``). Retention is by interest: a
batch leaves the stream once its consumer has acknowledged it.

Delivery is at least once. ``get`` fetches a few messages ahead; ``done``
acknowledges and waits until the server has the acks. Until then a batch is
kept alive by ``in_progress`` signals (every second, or every third of a
shorter ``ack_wait``); if the consumer dies, the server redelivers it after
``ack_wait`` (at once after ``close``, which naks what was not done), and
after a restart of nats-server that lost the latest acks (``kill -9``) the
batches come again from the last acknowledgement it kept. A redelivered
batch comes with ``Delivery.replay`` set. A publish is retried under the
same ``Nats-Msg-Id`` for ``retry_seconds`` (a server restart, a cluster
electing a new leader): the stream's duplicate window keeps a retried
publish from being stored twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import TypedDict, Unpack

import nats
import nats.errors
import nats.js.errors
import pyarrow as pa
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from vigil.bus import codec
from vigil.bus.destination import BusFull, Delivery, Overflow, counters
from vigil.bus.natslogin import NatsLogin, refusal, shown
from vigil.bus.spool import Spool
from vigil.model import LOGS_SCHEMA, POINTS_SCHEMA
from vigil.sketch import SKETCH_SCHEMA

log = logging.getLogger(__name__)

KINDS = (("points", POINTS_SCHEMA), ("logs", LOGS_SCHEMA), ("sketches", SKETCH_SCHEMA))
# JetStream answers a publish into a full discard-new stream with these codes.
_FULL_CODES = {10047, 10077, 10078}  # storage resources, maximum messages, maximum bytes
# What a publish meets while servers restart or a cluster elects a stream leader.
_UNAVAILABLE = (
    TimeoutError,  # nats-py raises its own and asyncio's
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.js.errors.NoStreamResponseError,
)
_CONNECT_ATTEMPTS = 3  # per server at start: a wrong address is said at once
_FETCH_BATCH = 8  # messages fetched ahead: a few MB at most, kept alive by in_progress
_HEADER_ROOM = 1024  # bytes of a message left for its headers
DUPLICATE_WINDOW = 120.0  # seconds during which a retried publish is recognised


class LinkOptions(TypedDict, total=False):
    """What ``JetStream.connect`` passes on to ``JetStream`` (which holds the defaults)."""

    node: str
    prefix: str
    replicas: int
    ack_wait: float
    retry_seconds: float
    timeout: float


class JetStreamError(ConnectionError):
    """NATS is unreachable or refused the bus's streams; the message says which and why."""


def _recancel() -> None:
    """Raise the cancellation nats-py swallowed in the middle of a publish, if any.

    nats-py catches CancelledError while queueing a message for its flusher
    (``Client._flush_pending``), so a task cancelled there would go on as if
    nothing happened and never stop. Python 3.11 still counts the request
    (``Task.cancelling``): called after each call into the client, this
    raises it again.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def kind_of(schema: pa.Schema) -> str:
    """The record kind of a batch, which names its subject: points, logs, sketches or other."""
    return next((name for name, known in KINDS if schema.equals(known)), "other")


@dataclasses.dataclass
class _Delivered(Delivery):
    """A delivery with the JetStream message it came in, acknowledged by ``done``."""

    msg: Msg | None = None


class JetStreamDestination:
    """One destination's queue as a JetStream stream and its pull consumer.

    ``sub`` is None in a process that only publishes; ``consumer`` names the
    consumer whose depth the metrics show (None: none to show).
    """

    def __init__(
        self,
        link: JetStream,
        name: str,
        overflow: Overflow,
        capacity_bytes: int,
        sub: JetStreamContext.PullSubscription | None,
        consumer: str | None,
        delivered_seq: int,
        own_consumer: bool = False,
    ) -> None:
        self.name = name
        self.overflow = overflow
        self.capacity_bytes = capacity_bytes
        self.stream = link.stream_name(name)
        self.spool: Spool | None = None  # the stream is the spool
        self.memory_bytes = 0
        self.stream_bytes = 0
        self.delivered_rows = 0
        self.dropped_batches: collections.Counter[str] = collections.Counter()
        self.dropped_rows: collections.Counter[str] = collections.Counter()
        self.replay_total = 0  # redeliveries got
        self.replay_done = 0
        self.consumer = consumer
        self._link = link
        self._sub = sub
        self._own_consumer = own_consumer
        self._subject = f"{link.prefix}.{name}"
        self._last_seq = delivered_seq  # highest stream sequence delivered: a jump is a drop
        self._pending = 0  # in the stream, not yet fetched (as of the last fetch or refresh)
        self._fetched: collections.deque[Msg] = collections.deque()
        self._outstanding: dict[int, Msg] = {}  # by stream sequence: fetched, not yet done
        self._ticker = asyncio.create_task(self._tick())

    def __len__(self) -> int:
        return len(self._fetched) + self._pending

    @property
    def spool_bytes(self) -> int:
        """Bytes of the stream when it is on disk (``spill``)."""
        return self.stream_bytes if self.overflow is Overflow.SPILL else 0

    def _drop(self, reason: str, batches: int, rows: int = 0) -> None:
        self.dropped_batches[reason] += batches
        if rows:
            self.dropped_rows[reason] += rows

    async def put(self, batch: pa.Table, durable: bool = False) -> None:
        """Publish ``batch`` to the stream; returns once JetStream has stored it or dropped it.

        A batch larger than a NATS message is published as several, each a
        batch of its own. Raises ``BusFull`` for a durable put to a full
        ``spill`` stream, or when NATS stays unreachable for ``retry_seconds``.
        """
        if batch.num_rows == 0:
            return
        subject = f"{self._subject}.{kind_of(batch.schema)}"
        batch_id = uuid.uuid4().hex
        for i, (rows, data) in enumerate(await self._link.encoded(batch)):
            await self._publish(subject, data, f"{batch_id}-{i}", rows, durable)

    async def _publish(
        self, subject: str, data: bytes, msg_id: str, rows: int, durable: bool
    ) -> None:
        headers = {"Nats-Msg-Id": msg_id}
        deadline = time.monotonic() + self._link.retry_seconds
        delay = 0.05
        while True:
            try:
                await self._link.js.publish(subject, data, headers=headers)
                _recancel()
                return
            except nats.js.errors.APIError as e:
                if e.err_code in _FULL_CODES:
                    if self.overflow is not Overflow.BLOCK:
                        self._refuse(durable, rows)
                        return
                    deadline = float("inf")  # full is not unreachable: wait as long as it takes
                elif not isinstance(e, nats.js.errors.ServiceUnavailableError):
                    raise JetStreamError(f"destination {self.name}: {e.description}") from None
                elif time.monotonic() > deadline:
                    self._give_up(e, durable, rows)
                    return
            except _UNAVAILABLE as e:  # a server restarting, a cluster electing a leader
                if time.monotonic() > deadline:
                    self._give_up(e, durable, rows)
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _refuse(self, durable: bool, rows: int) -> None:
        """A full stream refused a batch: a durable put to ``spill`` says so, others count it."""
        if durable and self.overflow is Overflow.SPILL:
            raise BusFull(f"destination {self.name}: stream {self.stream} is full")
        self._drop("stream full, newest dropped", 1, rows)

    def _give_up(self, error: Exception, durable: bool, rows: int) -> None:
        """NATS stayed unavailable for ``retry_seconds``: a durable put fails, others count it."""
        if durable:
            raise BusFull(f"destination {self.name}: NATS unavailable ({error!r})")
        log.warning("destination %s: NATS unavailable, batch dropped", self.name)
        self._drop("bus unreachable, dropped", 1, rows)

    async def get(self, timeout: float | None = None) -> Delivery | None:
        """The next batch of the stream, waiting up to ``timeout`` seconds (None: forever)."""
        if self._sub is None:
            raise RuntimeError(f"destination {self.name}: this process only publishes to it")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._fetched:
            wait = 5.0 if deadline is None else min(5.0, deadline - time.monotonic())
            if wait <= 0:
                return None
            await self._fetch(wait)
        msg = self._fetched.popleft()
        meta = msg.metadata
        seq = meta.sequence.stream
        # a server that lost the consumer's state (kill -9) counts deliveries from 1 again
        replay = meta.num_delivered > 1 or seq <= self._last_seq
        if replay:
            self.replay_total += 1
        elif seq > self._last_seq + 1:
            self._drop("stream full, oldest dropped", seq - self._last_seq - 1)
        self._last_seq = max(self._last_seq, seq)
        self._outstanding[seq] = msg
        batch = await asyncio.to_thread(codec.decode, msg.data)
        self.delivered_rows += batch.num_rows
        return _Delivered(batch, replay=replay, msg=msg)

    async def _fetch(self, wait: float) -> None:
        assert self._sub is not None
        try:
            msgs = await self._sub.fetch(_FETCH_BATCH, timeout=max(wait, 0.01))
        except TimeoutError:  # nats-py raises its own and asyncio's
            _recancel()
            self._pending = 0
        except nats.errors.ConnectionClosedError:
            raise JetStreamError(
                f"destination {self.name}: the NATS connection is closed"
            ) from None
        except nats.errors.Error as e:  # reconnecting: the client retries on its own
            log.debug("destination %s: fetch failed: %r", self.name, e)
            await asyncio.sleep(min(wait, 0.5))
        else:
            _recancel()
            self._fetched.extend(msgs)
            if msgs:
                self._pending = msgs[-1].metadata.num_pending  # beyond the ones fetched

    async def done(self, deliveries: list[Delivery]) -> None:
        """Acknowledge ``deliveries`` and wait until the server has the acks.

        An ack lost on the way (the server restarting) means the batch is
        delivered again: at least once, never lost.
        """
        for d in deliveries:
            assert isinstance(d, _Delivered) and d.msg is not None
            self._outstanding.pop(d.msg.metadata.sequence.stream, None)
            self.replay_done += d.replay
            with contextlib.suppress(nats.errors.Error):
                await d.msg.ack()
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            await self._link.nc.flush(timeout=5)
        _recancel()

    async def _tick(self) -> None:
        """Keep fetched batches alive and read the stream's depth and bytes for the metrics."""
        interval = min(1.0, self._link.ack_wait / 3)
        while True:
            _recancel()
            await asyncio.sleep(interval)
            try:
                for msg in [*self._fetched, *self._outstanding.values()]:
                    await msg.in_progress()
                info = await self._link.js.stream_info(self.stream)
                if self.consumer is not None:
                    consumer = await self._link.js.consumer_info(self.stream, self.consumer)
                    self._pending = consumer.num_pending or 0
            except (TimeoutError, nats.errors.Error) as e:
                log.debug("destination %s: refresh failed: %r", self.name, e)
                continue
            self.stream_bytes = info.state.bytes
            self.memory_bytes = 0 if self.overflow is Overflow.SPILL else info.state.bytes

    async def close(self) -> None:
        """Stop refreshing; what was fetched and not done goes back to the stream now.

        A consumer of this process's own is deleted, so that the stream no
        longer keeps batches for it.
        """
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        for msg in [*self._outstanding.values(), *self._fetched]:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()
        self._outstanding.clear()
        self._fetched.clear()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        if self._own_consumer and self.consumer is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self._link.js.delete_consumer(self.stream, self.consumer)

    def status(self) -> dict[str, object]:
        """Depth, bytes, drops and redeliveries, as ``vigil status`` shows them."""
        return counters(self) | {"stream": self.stream, "consumer": self.consumer}


class JetStream:
    """A node's connection to NATS JetStream, and the destinations it keeps there.

    ``node`` names this process in the names of the consumers of its own;
    ``timeout`` bounds one JetStream request (a publish waiting for its ack);
    ``retry_seconds`` how long a publish is retried before it is given up.
    """

    def __init__(
        self,
        nc: Client,
        node: str = "vigil",
        prefix: str = "vigil",
        replicas: int = 1,
        ack_wait: float = 30.0,
        retry_seconds: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.nc = nc
        self.node = node
        self.js = nc.jetstream(timeout=timeout)
        self.prefix = prefix
        self.replicas = replicas
        self.ack_wait = ack_wait
        self.retry_seconds = retry_seconds
        self.destinations: list[JetStreamDestination] = []
        self._last: tuple[pa.Table, list[tuple[int, bytes]]] | None = None

    @classmethod
    async def connect(
        cls,
        servers: str,
        login: NatsLogin | None = None,
        connect_seconds: float = 10.0,
        **link: Unpack[LinkOptions],
    ) -> JetStream:
        """Connect to ``servers`` (comma-separated NATS URLs); reconnects on its own after that.

        ``login``: user, password and TLS files (none by default).
        ``connect_seconds`` bounds the first connection: nats-py waits forever
        after a TLS certificate it does not trust. The rest are ``JetStream``'s.
        """
        errors: collections.deque[Exception] = collections.deque(maxlen=32)

        async def report(e: Exception) -> None:
            log.warning("NATS: %r", e)
            errors.append(e)  # read if the first connection fails

        try:
            options = (login or NatsLogin()).options()
        except ValueError as e:
            raise JetStreamError(str(e)) from None
        # nats-py takes fractions of seconds though its hints say int.
        options |= {"reconnect_time_wait": 0.25, "connect_timeout": min(5, connect_seconds)}
        nc = Client()
        made = cls(nc, **link)  # no I/O until the connection is up
        try:
            await asyncio.wait_for(
                nc.connect(
                    [s.strip() for s in servers.split(",")],
                    name=f"vigil {made.node}",
                    max_reconnect_attempts=_CONNECT_ATTEMPTS,
                    error_cb=report,
                    **options,
                ),
                connect_seconds,
            )
        except (OSError, nats.errors.Error) as e:
            await nc.close()
            why = refusal(errors) or repr(e)
            raise JetStreamError(f"cannot connect to NATS at {shown(servers)}: {why}") from None
        # Once connected, never give up: a restarting server or cluster is waited for.
        nc.options["max_reconnect_attempts"] = -1
        return made

    async def encoded(self, batch: pa.Table) -> list[tuple[int, bytes]]:
        """The messages of ``batch``, encoded once for all the destinations it is put to.

        The fan-out puts one table to each destination in turn, so the last
        one encoded is remembered (by identity: tables are immutable).
        """
        if self._last is not None and self._last[0] is batch:
            return self._last[1]
        limit = self.nc.max_payload - _HEADER_ROOM
        pieces = await asyncio.to_thread(codec.encode, batch, limit)
        self._last = (batch, pieces)
        return pieces

    def stream_name(self, destination: str) -> str:
        """The stream that holds ``destination``'s queue."""
        return f"{self.prefix}-{destination}"

    async def destination(
        self,
        name: str,
        capacity_bytes: int,
        overflow: Overflow,
        spool_bytes: int = 0,
        *,
        consume: bool = True,
        shared: bool = True,
    ) -> JetStreamDestination:
        """The destination ``name``: its stream (and consumer) are created or updated to the policy.

        ``consume``: this process reads it, else it only publishes to it.
        ``shared``: one durable consumer ``name`` shared by every reading
        process, which split the batches between them; else each reading
        process reads every batch through a consumer of its own.
        """
        spill = overflow is Overflow.SPILL
        stream_name = self.stream_name(name)
        stream = StreamConfig(
            name=stream_name,
            subjects=[f"{self.prefix}.{name}.>"],
            retention=RetentionPolicy.INTEREST,
            storage=StorageType.FILE if spill else StorageType.MEMORY,
            discard=DiscardPolicy.OLD if overflow is Overflow.DROP_HEAD else DiscardPolicy.NEW,
            max_bytes=spool_bytes if spill else capacity_bytes,
            num_replicas=self.replicas,
            duplicate_window=DUPLICATE_WINDOW,
        )
        consumer = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait, max_deliver=-1
        )
        if shared:
            consumer.durable_name = consumer.name = name
        else:  # this process's own: gone with it, and no backlog from before it started
            consumer.name = f"{name}-{self.node}-{uuid.uuid4().hex[:8]}"
            consumer.deliver_policy = DeliverPolicy.NEW
            consumer.inactive_threshold = self.ack_wait
        sub = None
        delivered_seq = 0
        try:
            try:
                await self.js.add_stream(stream)
            except nats.js.errors.BadRequestError:  # exists with another configuration
                await self.js.update_stream(stream)
            if shared or consume:
                info = await self._consumer(stream_name, consumer)
                delivered_seq = info.delivered.stream_seq if info.delivered else 0
            if consume:
                sub = await self.js.pull_subscribe_bind(consumer.name, stream_name)
        except nats.js.errors.APIError as e:
            raise JetStreamError(f"stream {stream_name}: {e.description}") from None
        except nats.errors.Error as e:  # a cluster still electing its leaders, say
            raise JetStreamError(f"stream {stream_name}: NATS did not answer ({e!r})") from None
        d = JetStreamDestination(
            self, name, overflow, capacity_bytes, sub,
            consumer.name if shared or consume else None, delivered_seq, own_consumer=not shared,
        )  # fmt: skip
        self.destinations.append(d)
        return d

    async def _consumer(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        """The consumer ``config.name`` of ``stream``, created if it does not exist yet."""
        assert config.name is not None
        try:
            info: ConsumerInfo = await self.js.consumer_info(stream, config.name)
        except nats.js.errors.NotFoundError:
            info = await self.js.add_consumer(stream, config)
        return info

    async def close(self) -> None:
        """Close every destination, then the connection."""
        for d in self.destinations:
            await d.close()
        await self.nc.close()
