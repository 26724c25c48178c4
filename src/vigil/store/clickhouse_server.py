"""The ClickHouse server backend: a ``connection.Connection`` over the native protocol.

``clickhouse-driver`` speaks the native protocol to every server from 18.16
on (``clickhouse-connect`` does not connect to 18.16). Results come back as
Arrow tables of the types chDB gives (``DateTime`` as uint32 epoch seconds,
``Tuple`` as a struct with fields ``1``, ``2``, ...), so readers do not care
which engine answered; inserts go as columns (numpy where the driver can).
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from typing import Any

import numpy as np
import pyarrow as pa
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError
from clickhouse_driver.errors import ServerException

from vigil.store.dialect import Dialect, detect

log = logging.getLogger(__name__)
# The driver logs a warning for every column it reads without numpy (arrays, tuples).
logging.getLogger("clickhouse_driver.columns.service").setLevel(logging.ERROR)

# Settings of every session: big IN lists (series lookups, log replays) exceed the
# 256 KiB default query size; a write into a Distributed table returns only once
# every shard has stored its rows (the storage contract: reads see what was written).
SESSION_SETTINGS: dict[str, Any] = {
    "use_numpy": True,
    "max_query_size": 64 << 20,
    "insert_distributed_sync": 1,
}

# Where the probes at start create their tables (dropped after).
PROBE_DB = "vigil_probe"
# Server error codes of a refused login: unknown user, wrong, required password, failed.
_LOGIN_REFUSED = {192, 193, 194, 516}

_INTEGERS = {
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
}


@dataclasses.dataclass(frozen=True)
class ServerAddress:
    """Where a server listens and how to log in; ``HOST[:PORT]`` as users write it."""

    host: str
    port: int
    user: str = "default"
    password: str = dataclasses.field(default="", repr=False)  # kept out of logs
    secure: bool = False
    ca_file: str = ""

    @classmethod
    def parse(
        cls, text: str, user: str = "", password: str = "", secure: bool = False, ca_file: str = ""
    ) -> ServerAddress:
        """``host``, ``host:port`` (native protocol; 9000, or 9440 with TLS, by default)."""
        host, _, port = text.strip().removeprefix("clickhouse://").rpartition(":")
        if not host:
            host, port = port, ""
        if not host or (port and not port.isdigit()):
            raise ValueError(f"clickhouse = {text!r}: use HOST or HOST:PORT (native protocol port)")
        return cls(
            host,
            int(port) if port else (9440 if secure else 9000),
            user or "default",
            password,
            secure,
            ca_file,
        )

    def at(self, host: str, port: int) -> ServerAddress:
        """The same login at another server (a shard of the cluster)."""
        return dataclasses.replace(self, host=host, port=port)

    def connect(self) -> ServerConnection:
        """A new connection to this server."""
        return ServerConnection(self)


class ServerLoginError(ConnectionError):
    """The server cannot be reached or refused the login; the message names the setting to fix."""


def _login_failure(address: ServerAddress, error: Exception) -> ServerLoginError:
    """What ``error``, met on the first round trip to ``address``, means for the settings."""
    where = f"ClickHouse at {address.host}:{address.port}"
    if isinstance(error, ServerException) and error.code in _LOGIN_REFUSED:
        reason = error.message.split(". Stack trace")[0].removeprefix("DB::Exception: ")
        return ServerLoginError(
            f"{where} refused user {address.user!r} ({reason}):"
            " check clickhouse_user and clickhouse_password"
        )
    if address.secure and address.ca_file:
        try:  # the driver reads the file on connect and reports it as a network error
            ssl.create_default_context(cafile=address.ca_file)
        except OSError as e:
            return ServerLoginError(
                f"clickhouse_ca_file = {address.ca_file!r}: cannot use it ({e})"
            )
    if "CERTIFICATE_VERIFY_FAILED" in str(error):
        trusted = repr(address.ca_file) if address.ca_file else "the system's CAs"
        return ServerLoginError(
            f"{where}: its TLS certificate is not signed by {trusted} ({error}):"
            " set clickhouse_ca_file to the CA certificate (PEM) that signed it"
        )
    tls = "with" if address.secure else "without"
    return ServerLoginError(
        f"cannot reach {where} {tls} TLS ({error}): check clickhouse and clickhouse_secure"
    )


class ServerConnection:
    """One native-protocol session speaking the ``connection.Connection`` protocol."""

    def __init__(self, address: ServerAddress) -> None:
        self.address = address
        tls: dict[str, Any] = {"secure": True, "verify": True} if address.secure else {}
        if address.secure and address.ca_file:
            tls["ca_certs"] = address.ca_file
        self._client = Client(
            host=address.host,
            port=address.port,
            user=address.user,
            password=address.password,
            settings=SESSION_SETTINGS,
            **tls,
        )
        self._columns: dict[str, dict[str, str]] = {}

    def login(self) -> None:
        """Reach the server and log in, or raise ``ServerLoginError`` saying which setting to fix."""
        try:
            self._client.execute("SELECT 1")
        except (DriverError, OSError, EOFError) as e:
            raise _login_failure(self.address, e) from None

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        self._client.execute(sql)

    def query_arrow(self, sql: str) -> pa.Table:
        """Run a query and return an Arrow table of chDB's types."""
        data, types = self._client.execute(sql, with_column_types=True, columnar=True)
        if not data:
            data = [[] for _ in types]
        return pa.table(
            {name: _to_arrow(values, kind) for values, (name, kind) in zip(data, types)}
        )

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        """Insert an Arrow table column by column, converted to each target column's type."""
        columns = self._column_types(table)
        names: list[str] = []
        values: list[Any] = []
        for name in batch.column_names:
            column = batch.column(name)
            if name not in columns and f"{name}.key" in columns:  # a map as Nested pairs
                pairs = column.to_pylist()
                names += [f"{name}.key", f"{name}.value"]
                values += [_objects([[k for k, _ in row] for row in pairs]),
                           _objects([[v for _, v in row] for row in pairs])]  # fmt: skip
                continue
            names.append(name)
            values.append(_from_arrow(column, columns[name]))
        listed = ", ".join(f"`{n}`" for n in names)
        self._client.execute(f"INSERT INTO {table} ({listed}) VALUES", values, columnar=True)

    def _column_types(self, table: str) -> dict[str, str]:
        """Name -> type of a table's columns (asked once per table and connection)."""
        if table not in self._columns:
            rows = self.query_arrow(f"DESCRIBE TABLE {table}").to_pylist()
            self._columns[table] = {r["name"]: r["type"] for r in rows}
        return self._columns[table]

    def close(self) -> None:
        """Close the session."""
        self._client.disconnect()


def _unwrap(kind: str) -> str:
    """The type inside ``LowCardinality(...)`` (the wire carries plain values)."""
    if kind.startswith("LowCardinality("):
        return kind[len("LowCardinality(") : -1]
    return kind


def _arguments(kind: str) -> list[str]:
    """The top-level arguments of ``Name(a, b(c, d))``: ``['a', 'b(c, d)']``."""
    inner = kind[kind.index("(") + 1 : -1]
    args, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
    args.append(inner[start:].strip())
    return args


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type chDB gives a ClickHouse type.

    ``Array(Tuple(String, String))`` is how a map reads on servers without
    ``Map`` (``logstore.columns``): it becomes the map chDB would give.

    >>> arrow_type("Array(Tuple(String, String))")
    MapType(map<string, string>)
    """
    kind = _unwrap(kind)
    if kind in _INTEGERS:
        return _INTEGERS[kind]
    if kind == "DateTime" or kind.startswith("DateTime("):
        return pa.uint32()
    if kind == "Date":
        return pa.date32()
    if kind.startswith("DateTime64"):
        return pa.timestamp("ms", tz="Etc/UTC")
    if kind.startswith("Array("):
        (item,) = _arguments(kind)
        if item == "Tuple(String, String)":
            return pa.map_(pa.string(), pa.string())
        return pa.list_(arrow_type(item))
    if kind.startswith("Tuple("):
        return pa.struct([(str(i), arrow_type(a)) for i, a in enumerate(_arguments(kind), 1)])
    if kind.startswith("Map("):
        key, value = _arguments(kind)
        return pa.map_(arrow_type(key), arrow_type(value))
    return pa.string()


def _to_arrow(values: Any, kind: str) -> pa.Array:
    """One result column (numpy or Python values from the driver) as chDB's Arrow type."""
    target = arrow_type(kind)
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":  # DateTime
        return pa.array(values.astype("datetime64[s]").astype(np.int64).astype(np.uint32))
    if pa.types.is_struct(target):
        values = [dict(zip((f.name for f in target), row)) for row in values]
    elif pa.types.is_list(target) and pa.types.is_struct(target.value_type):
        names = [f.name for f in target.value_type]
        values = [[dict(zip(names, item)) for item in row] for row in values]
    elif not isinstance(values, np.ndarray) or values.dtype.kind in "OU":
        values = list(values)
    return pa.array(values, type=target)


def _objects(items: list[Any]) -> np.ndarray[Any, np.dtype[Any]]:
    """A numpy object array of ``items`` (how the driver takes non-numeric columns)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _from_arrow(column: pa.ChunkedArray, kind: str) -> np.ndarray[Any, np.dtype[Any]]:
    """An Arrow column as the driver takes it for a column of type ``kind``."""
    kind = _unwrap(kind)
    if kind in _INTEGERS:
        if pa.types.is_timestamp(column.type):  # epoch-ms Int64 on servers without DateTime64
            column = column.cast(pa.int64())
        return np.asarray(column.to_numpy()).astype(_INTEGERS[kind].to_pandas_dtype())
    if kind == "DateTime" or kind.startswith("DateTime("):
        return np.asarray(column.cast(pa.int64()).to_numpy()).astype("datetime64[s]")
    if kind.startswith("DateTime64"):
        return np.asarray(column.cast(pa.int64()).to_numpy()).astype("datetime64[ms]")
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    rows = column.to_pylist()
    if pa.types.is_struct(column.type):  # a Tuple: the struct's values in order
        rows = [tuple(row.values()) for row in rows]
    return _objects(rows)


def detect_dialect(conn: ServerConnection, scratch_db: str) -> Dialect:
    """The server's version and features, probed in ``scratch_db`` (created, then dropped)."""
    version = str(conn.query_arrow("SELECT version() AS v").column("v")[0].as_py())
    conn.execute(f"CREATE DATABASE IF NOT EXISTS {scratch_db}")

    def probe(sql: str) -> bool:
        try:
            conn.execute(sql)
            return True
        except DriverError:
            return False

    try:
        return detect(version, probe, scratch_db)
    finally:
        conn.execute(f"DROP DATABASE IF EXISTS {scratch_db}")
