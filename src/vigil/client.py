"""Emit typed log entries to Vigil over the event-log TCP protocol.

Spec: ``docs/formats/eventlog.md``. Emitting only encodes the entry and
appends it to a bounded buffer, so it never blocks the application and never
raises on network trouble; a daemon thread owns the socket, sends entries in
batches as JSON lines, and keeps each one until an ``{"ack": n}`` covers it.
After a disconnect it reconnects with capped exponential backoff and resends
what was not acknowledged (at-least-once delivery).

>>> with Client(app="checkout") as vigil:  # doctest: +SKIP
...     with vigil.transaction("GET /cart") as tx:
...         vigil.atomic("select cart", "SQL", duration_ms=4.2)
...         tx.status = 404
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import os
import random
import secrets
import selectors
import socket
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import Any

import orjson

# Bytes taken from the buffer per write, so one batch cannot hog memory.
_BATCH_BYTES = 1 << 20
# Replies the client keeps to explain rejects in ``stats``.
_LAST_ERRORS = 10
# A connection with unacknowledged entries and no reply for this long is dead.
_ACK_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 5.0
_FIRST_BACKOFF = 0.1


def _new_id() -> str:
    """A random 64-bit transaction id as 16 hex digits (unique per source in practice)."""
    return secrets.token_hex(8)


def _program_name() -> str:
    """The running script's name, the default ``app`` of a client."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return os.path.splitext(name)[0] or "python"


class Transaction:
    """A unit of work that spans time: ``begin`` on entry, ``end`` on exit.

    Set ``status`` to report an error code; an exception escaping the block
    sets it to 1 (unless already set), names the exception in
    ``data["exception"]`` and puts the traceback in the ``end``'s message.
    Entries emitted by the same client inside the block carry this
    transaction's ``id`` as their ``parent``.
    """

    def __init__(self, client: Client, name: str, type: str, data: dict[str, Any] | None) -> None:
        self.client = client
        self.name = name
        self.type = type
        self.data: dict[str, Any] = dict(data) if data else {}
        self.id = _new_id()
        self.parent: str | None = None
        self.status = 0
        self._started = 0.0
        self._token: contextvars.Token[Transaction | None] | None = None

    def __enter__(self) -> Transaction:
        enclosing = self.client.current_transaction()
        self.parent = enclosing.id if enclosing else None
        self._token = self.client._current.set(self)
        entry: dict[str, Any] = {"kind": "begin", "type": self.type, "name": self.name}
        entry["id"] = self.id
        if self.parent:
            entry["parent"] = self.parent
        if self.data:
            entry["data"] = self.data
        self.client._emit(entry)
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = (time.monotonic() - self._started) * 1000.0
        if self._token is not None:
            self.client._current.reset(self._token)
            self._token = None
        entry: dict[str, Any] = {"kind": "end", "type": self.type, "name": self.name}
        entry["id"] = self.id
        if exc_type is not None:
            self.data["exception"] = exc_type.__name__
            entry["message"] = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
            if self.status == 0:
                self.status = 1
        entry["status"] = self.status
        entry["duration_ms"] = round(duration_ms, 3)
        if self.data:
            entry["data"] = self.data
        self.client._emit(entry)


class Client:
    """A buffered, non-blocking sender of event-log entries to one Vigil node.

    ``buffer_entries`` bounds the entries held (waiting to be sent or sent and
    not yet acknowledged); when it is full a new entry is dropped and counted
    in ``stats["dropped"]``: losing telemetry beats stalling the application.
    ``flush_interval`` is how long entries may wait to be batched. Close the
    client (or use it as a context manager): entries still buffered when the
    process exits are lost.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2514,
        *,
        source_host: str | None = None,
        cluster: str = "",
        dc: str = "",
        app: str | None = None,
        buffer_entries: int = 100_000,
        flush_interval: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.address = (host, port)
        self.buffer_entries = buffer_entries
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        source: dict[str, Any] = {"host": source_host or socket.gethostname()}
        if cluster:
            source["cluster"] = cluster
        if dc:
            source["dc"] = dc
        source["app"] = app if app is not None else _program_name()
        self._source = source
        # One variable per client: a transaction of one client is no parent
        # of another client's entries.
        self._current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
            f"vigil_transaction_{id(self):x}", default=None
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Entries as (sequence number, JSON line); both deques stay in order.
        self._unsent: collections.deque[tuple[int, bytes]] = collections.deque()
        self._inflight: collections.deque[tuple[int, bytes]] = collections.deque()
        self._next_seq = 0
        self._counts = dict.fromkeys(("sent", "acked", "rejected", "dropped", "reconnects"), 0)
        self._errors: collections.deque[str] = collections.deque(maxlen=_LAST_ERRORS)
        self._connected = False
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="vigil-client", daemon=True)
        self._thread.start()

    # -- emitting ---------------------------------------------------------

    def current_transaction(self) -> Transaction | None:
        """The innermost open transaction of this client in the current context."""
        return self._current.get()

    def transaction(
        self, name: str, type: str = "URL", data: dict[str, Any] | None = None
    ) -> Transaction:
        """A context manager emitting ``begin`` now and ``end`` with the duration at exit."""
        return Transaction(self, name, type, data)

    def atomic(
        self,
        name: str,
        type: str,
        duration_ms: float,
        status: int = 0,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Emit work that has just ended after ``duration_ms``, begin and end in one entry."""
        entry: dict[str, Any] = {"kind": "atomic", "type": type, "name": name, "id": _new_id()}
        entry["status"] = status
        entry["duration_ms"] = duration_ms
        self._emit(self._with_parent(entry, data))

    def event(
        self,
        name: str,
        type: str = "",
        status: int = 0,
        data: dict[str, Any] | None = None,
        message: str = "",
    ) -> None:
        """Emit a point-in-time happening, such as a deploy or a cache flush."""
        entry: dict[str, Any] = {"kind": "event", "name": name, "id": _new_id(), "status": status}
        if type:
            entry["type"] = type
        if message:
            entry["message"] = message
        self._emit(self._with_parent(entry, data))

    def heartbeat(self, data: dict[str, Any] | None = None) -> None:
        """Emit a sign of life; ``data`` may hold load, version and the like."""
        # The spec gives heartbeats no parent: they belong to the source, not to work.
        entry: dict[str, Any] = {"kind": "heartbeat"}
        if data:
            entry["data"] = data
        self._emit(entry)

    def line(
        self, message: str, severity: int | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Emit free text; ``severity`` is syslog's (0 emergency .. 7 debug)."""
        entry: dict[str, Any] = {"kind": "line", "message": message}
        if severity is not None:
            entry["severity"] = severity
        self._emit(self._with_parent(entry, data))

    def _with_parent(self, entry: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
        current = self._current.get()
        if current is not None:
            entry["parent"] = current.id
        if data:
            entry["data"] = data
        return entry

    def _emit(self, entry: dict[str, Any]) -> None:
        """Stamp, encode and buffer an entry; drop it (counted) when the buffer is full."""
        entry["ts"] = round(time.time(), 3)
        entry.update(self._source)
        # ``default=str`` so an odd value in ``data`` degrades to text instead of raising.
        line = orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        with self._lock:
            if self._closing or len(self._unsent) + len(self._inflight) >= self.buffer_entries:
                self._counts["dropped"] += 1
                return
            self._unsent.append((self._next_seq, line))
            self._next_seq += 1

    # -- control ----------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since the start: sent (lines written, resends included), acked,
        rejected (with ``last_errors``), dropped, pending (not yet acked), reconnects."""
        with self._lock:
            return {
                **self._counts,
                "pending": len(self._unsent) + len(self._inflight),
                "connected": self._connected,
                "last_errors": list(self._errors),
            }

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every entry emitted so far is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._next_seq
            self._wake()
            while True:
                oldest = self._inflight or self._unsent
                if not oldest or oldest[0][0] >= target:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop; True if nothing was left unsent."""
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        with self._lock:
            self._closing = True
        self._wake()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        if not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()
        return flushed

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        """Interrupt the sender's wait (for a flush or close)."""
        # An OSError means it is already awake (the pipe is full) or closed.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the sender thread ------------------------------------------------

    def _run(self) -> None:
        backoff = _FIRST_BACKOFF
        while not self._closing:
            try:
                sock = socket.create_connection(self.address, timeout=_CONNECT_TIMEOUT)
            except OSError as e:
                self._note_error(f"connect to {self.address[0]}:{self.address[1]}: {e}")
                self._sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.max_backoff)
                continue
            with self._lock:
                self._connected = True
            conn = _Connection(self)
            try:
                self._serve(sock, conn)
            finally:
                sock.close()
                self._disconnected(conn.rejected)
            if conn.acked_any:
                backoff = _FIRST_BACKOFF
            if not self._closing:
                self._sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.max_backoff)

    def _sleep(self, seconds: float) -> None:
        """Wait for ``seconds`` or until woken by close."""
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            end = time.monotonic() + seconds
            while not self._closing and (left := end - time.monotonic()) > 0:
                if sel.select(left):
                    self._drain_wake()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _serve(self, sock: socket.socket, conn: _Connection) -> None:
        """Send entries and read replies until the connection fails or the client closes."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ)
            sel.register(sock, selectors.EVENT_READ)
            writing = False
            last_reply = time.monotonic()
            while not self._closing:
                if len(conn.out) < _BATCH_BYTES:
                    conn.take_batch()
                if bool(conn.out) != writing:
                    writing = bool(conn.out)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    sel.modify(sock, events)
                for key, mask in sel.select(self.flush_interval):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                        continue
                    try:
                        if mask & selectors.EVENT_WRITE:
                            del conn.out[: sock.send(conn.out)]
                        if mask & selectors.EVENT_READ:
                            data = sock.recv(65536)
                            if not data:
                                self._note_error("server closed the connection")
                                return
                            last_reply = time.monotonic()
                            if not conn.feed(data):
                                return
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        self._note_error(f"connection lost: {e}")
                        return
                if conn.waiting and time.monotonic() - last_reply > _ACK_TIMEOUT:
                    self._note_error(f"no acknowledgement for {_ACK_TIMEOUT:.0f} s")
                    return
                if not conn.waiting:
                    last_reply = time.monotonic()

    def _disconnected(self, rejected: set[int]) -> None:
        """Put sent, unacknowledged entries back in front, in order, for resending.

        Entries the server rejected are not resent: a reject is final.
        """
        with self._lock:
            self._connected = False
            if not self._closing:
                self._counts["reconnects"] += 1
            self._unsent.extendleft(e for e in reversed(self._inflight) if e[0] not in rejected)
            self._inflight.clear()
            self._changed.notify_all()

    def _note_error(self, error: str) -> None:
        with self._lock:
            self._errors.append(error)


class _Connection:
    """Per-connection state of the sender: line numbers, bytes to write, replies."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.out = bytearray()
        self.lines_sent = 0
        self.reply = bytearray()
        self.rejected: set[int] = set()  # sequence numbers rejected, not yet covered by an ack
        self.acked_any = False

    @property
    def waiting(self) -> bool:
        """Whether entries were sent and are not yet acknowledged."""
        return bool(self.client._inflight)

    def take_batch(self) -> None:
        """Move buffered entries to the socket's output, numbering them as the server will."""
        c = self.client
        with c._lock:
            while c._unsent and len(self.out) < _BATCH_BYTES:
                seq, line = c._unsent.popleft()
                self.out += line
                c._inflight.append((seq, line))
                self.lines_sent += 1
                c._counts["sent"] += 1

    def feed(self, data: bytes) -> bool:
        """Handle the server's replies; False when the server reported a connection error."""
        self.reply += data
        *lines, rest = self.reply.split(b"\n")
        self.reply = bytearray(rest)
        for raw in lines:
            try:
                reply = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(reply, dict):
                continue
            if isinstance(reply.get("ack"), int):
                self._ack(reply["ack"])
            elif isinstance(reply.get("line"), int) and "error" in reply:
                self._reject(reply["line"], str(reply["error"]))
            elif "error" in reply:
                self.client._note_error(f"server: {reply['error']}")
                return False
        return True

    def _line_index(self, line: int) -> int:
        """Position in ``inflight`` of a line number of this connection."""
        c = self.client
        return len(c._inflight) - (self.lines_sent - line) - 1

    def _reject(self, line: int, error: str) -> None:
        c = self.client
        with c._lock:
            i = self._line_index(line)
            if not 0 <= i < len(c._inflight):
                return
            seq, raw = c._inflight[i]
            if seq in self.rejected:
                return
            self.rejected.add(seq)
            c._counts["rejected"] += 1
            c._errors.append(f"rejected: {error}: {raw[:200].decode(errors='replace').rstrip()}")

    def _ack(self, line: int) -> None:
        c = self.client
        with c._lock:
            n = self._line_index(line) + 1
            for _ in range(min(n, len(c._inflight))):
                seq, _line = c._inflight.popleft()
                if seq in self.rejected:
                    self.rejected.discard(seq)
                else:
                    c._counts["acked"] += 1
                self.acked_any = True
            c._changed.notify_all()
