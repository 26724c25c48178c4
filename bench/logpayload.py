"""Realistic log payloads for the logs benchmark: event-log JSON lines and syslog frames.

A fleet of 1,000 hosts (4 datacenters x 5 clusters x 50 hosts, 20 apps)
writes what services write: web requests as nested transactions (``begin``,
``atomic`` SQL and cache children carrying the parent's ``id``, ``end`` with
status and duration), batch jobs two levels deep, failed requests with a
Python or Java stack trace (several lines in one ``message``), events with
``data``, heartbeats, and plain ``line`` entries. Statuses are mostly 0 with
a few errors. Example line (one per entry on the wire)::

    {"ts":1763900000.125,"kind":"atomic","host":"cart-ams1-c2-017","cluster":"ams1-c2",
     "dc":"ams1","app":"cart","type":"SQL","name":"select cart_items","id":"e1042.1",
     "parent":"e1042","status":0,"duration_ms":3.7,"data":{"rows":12,"db":"orders"}}

Generation is vectorised: an entry is the concatenation of a few fragment
columns (timestamp, kind/type/name, host, id, parent, status, message, data),
each a ``take`` from a small table of pre-escaped JSON pieces or a number cast
to text, joined by Arrow in C++; no per-entry ``json.dumps``. The bytes are
built before any clock starts. Exactly ``rare_count`` entries carry
``RARE_WORD`` in their message, for the rare-word search.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DCS = ("ams1", "fra2", "iad1", "sjc3")
CLUSTERS_PER_DC = 5
HOSTS_PER_CLUSTER = 50
APPS = (
    "checkout", "cart", "search", "catalog", "payments", "auth", "accounts", "inventory",
    "shipping", "pricing", "recommend", "notify", "gateway", "billing", "reports", "media",
    "reviews", "orders", "fraud", "scheduler",
)  # fmt: skip
#: In ~10 entries of a corpus (``rare_count``), nowhere else.
RARE_WORD = "xylophage"
#: In two of the ten plain-line templates: about 5% of all entries.
COMMON_WORD = "user"
VARIANTS = 64  # names, messages and data templates are picked per episode among these

ENDPOINTS = (
    "GET /cart", "POST /cart/items", "GET /products/{id}", "GET /search", "POST /checkout",
    "GET /account", "POST /login", "GET /orders", "PUT /orders/{id}", "GET /health/deep",
    "DELETE /cart/items/{id}", "GET /recommendations",
)  # fmt: skip
QUERIES = (
    "select cart_items", "select product", "update stock", "insert order", "select user",
    "select prices", "update session", "select orders by customer",
)  # fmt: skip
CACHE_OPS = ("redis get session", "redis get cart", "memcache get product", "redis setex")
JOBS = ("nightly-export", "reindex-catalog", "settle-payments", "send-digest", "gc-sessions")
EVENTS = (
    ("deploy", "release", '{"version":"2.%C.0","by":"ci","canary":false}'),
    ("login", "user login", '{"user":"u%C","method":"password","mfa":true}'),
    ("config", "feature flag changed", '{"flag":"new_checkout","rollout_pct":%C}'),
    ("alert", "disk almost full", '{"mount":"/var","used_pct":9%C}'),
    ("cron", "certificate renewed", '{"domain":"shop.example.com","days_left":%C}'),
)
# Plain-line templates: (severity, text); %A and %B are numbers that vary per entry.
INFO = (
    (6, "user %A added sku %B to cart"),
    (6, "GET /api/v2/products/%A 200 in %B ms"),
    (6, "cache miss for key session:%A, refreshed in %B ms"),
    (6, "connection pool stats: active=%A idle=%B waiting=0"),
    (6, "payment authorised for order %A amount %B EUR"),
    (4, "retrying request to upstream inventory-%A (attempt %B of 5)"),
    (4, "slow query took %B ms: SELECT id, total FROM orders WHERE customer_id = %A"),
    (6, "user %A logged in via sso, session %B"),
    (6, "scheduled job %A finished, %B rows processed"),
    (5, "GC pause %B ms, heap %A MB after collection"),
)
TRACES = (
    (
        3,
        "Traceback (most recent call last):\n"
        '  File "/srv/app/handlers.py", line %B, in handle\n'
        "    return self.dispatch(request)\n"
        '  File "/srv/app/cart.py", line 88, in add_item\n'
        '    sku = item["sku"]\n'
        "KeyError: 'sku-%A'",
    ),
    (
        3,
        "java.lang.IllegalStateException: order %A already settled\n"
        "\tat com.acme.billing.Settlement.apply(Settlement.java:%B)\n"
        "\tat com.acme.billing.SettlementService.run(SettlementService.java:212)\n"
        "\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)\n"
        "\tat java.base/java.lang.Thread.run(Thread.java:833)",
    ),
    (
        3,
        "Traceback (most recent call last):\n"
        '  File "/srv/app/db.py", line %B, in execute\n'
        "    cur.execute(sql, params)\n"
        "psycopg2.errors.DeadlockDetected: deadlock detected\n"
        "DETAIL:  Process %A waits for ShareLock on transaction 48213; blocked by process 9117.",
    ),
    (
        2,
        'java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null\n'
        "\tat com.acme.search.QueryParser.normalise(QueryParser.java:%B)\n"
        "\tat com.acme.search.SearchController.search(SearchController.java:57)\n"
        "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n"
        "\t... %A more",
    ),
)
STEP_LINES = ((6, "step read %A rows from partition %B"),)
RARE = ((5, "checksum " + RARE_WORD + " mismatch in block %A of segment %B, re-reading"),)


@dataclasses.dataclass(frozen=True)
class Slot:
    """One entry of an episode template; ``None`` fields are left out of the entry."""

    kind: str
    type: str = ""
    names: tuple[str, ...] = ()
    id: str | None = None  # suffix to the episode id
    parent: str | None = None
    status: str | None = None  # "ok" (mostly 0), "err" (an error code), None (absent)
    duration: bool = False
    offset_ms: int = 0  # from the episode's start, scaled per episode
    messages: tuple[tuple[int, str], ...] = ()
    data: tuple[str, ...] = ()


_SQL_DATA = ('{"rows":%C,"db":"orders"}', '{"rows":%C,"db":"catalog","replica":true}')
_URL_DATA = ('{"bytes":%C,"http_status":200}', '{"bytes":%C,"http_status":200,"gzip":true}')

#: Episode templates and their weights (per episode, not per entry).
EPISODES: tuple[tuple[float, tuple[Slot, ...]], ...] = (
    (  # a web request: begin, three child calls, end
        0.20,
        (
            Slot("begin", "URL", ENDPOINTS, id=""),
            Slot("atomic", "SQL", QUERIES, "x1", "", "ok", True, 2, data=_SQL_DATA),
            Slot("atomic", "cache", CACHE_OPS, "x2", "", "ok", True, 5),
            Slot("atomic", "SQL", QUERIES[::-1], "x3", "", "ok", True, 9, data=_SQL_DATA),
            Slot("end", "URL", ENDPOINTS, "", None, "ok", True, 14, data=_URL_DATA),
        ),
    ),
    (  # a batch job with two steps, two levels of nesting
        0.02,
        (
            Slot("begin", "job", JOBS, id=""),
            Slot("begin", "step", ("extract",), "s1", ""),
            Slot("atomic", "SQL", QUERIES, "s1q", "s1", "ok", True, 300, data=_SQL_DATA),
            Slot("line", parent="s1", offset_ms=310, messages=STEP_LINES),
            Slot("end", "step", ("extract",), "s1", None, "ok", True, 320),
            Slot("begin", "step", ("load",), "s2", "", offset_ms=330),
            Slot("atomic", "SQL", ("insert order",), "s2q", "s2", "ok", True, 900),
            Slot("end", "step", ("load",), "s2", None, "ok", True, 950),
            Slot("end", "job", JOBS, "", None, "ok", True, 960),
        ),
    ),
    (  # a failed request: the SQL child fails, a stack trace, the request ends 500
        0.015,
        (
            Slot("begin", "URL", ENDPOINTS, id=""),
            Slot("atomic", "SQL", QUERIES, "x1", "", "err", True, 30),
            Slot("line", parent="", offset_ms=31, messages=TRACES),
            Slot("end", "URL", ENDPOINTS, "", None, "err", True, 35, data=_URL_DATA),
        ),
    ),
    *(  # events differ in type as well as name: one template each
        (0.10 / len(EVENTS), (Slot("event", t, (n,), "", None, "ok", data=(d,)),))
        for t, n, d in EVENTS
    ),
    (0.10, (Slot("heartbeat", names=("alive",), data=('{"uptime_s":%C,"version":"4.2.1"}',)),)),
    (0.565, (Slot("line", messages=INFO),)),
)


def _esc(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    return json.dumps(text)[1:-1]


@dataclasses.dataclass(frozen=True)
class Fleet:
    """Host, cluster, dc and app of every host, as JSON fragments and as plain fields."""

    hosts: list[str]
    clusters: list[str]
    dcs: list[str]
    apps: list[str]

    @classmethod
    def build(cls) -> Fleet:
        """The fleet of 1,000 hosts; each cluster runs three apps, host names say which."""
        hosts, clusters, dcs, apps = [], [], [], []
        for d, dc in enumerate(DCS):
            for c in range(CLUSTERS_PER_DC):
                ci = d * CLUSTERS_PER_DC + c
                for h in range(HOSTS_PER_CLUSTER):
                    app = APPS[(ci + (h % 3) * 7) % len(APPS)]
                    hosts.append(f"{app}-{dc}-c{c}-{h:03d}")
                    clusters.append(f"{dc}-c{c}")
                    dcs.append(dc)
                    apps.append(app)
        return cls(hosts, clusters, dcs, apps)

    def fragments(self) -> pa.Array:
        """``,"host":...,"cluster":...,"dc":...,"app":...`` for each host."""
        return pa.array(
            [
                f',"host":"{h}","cluster":"{c}","dc":"{d}","app":"{a}"'
                for h, c, d, a in zip(self.hosts, self.clusters, self.dcs, self.apps, strict=True)
            ]
        )


def _split(template: str) -> tuple[str, str, str]:
    """Cut an escaped message template at %A and %B (in either order) into three pieces."""
    first, second = ("%A", "%B") if template.find("%A") < template.find("%B") else ("%B", "%A")
    a, rest = template.split(first, 1)
    b, c = rest.split(second, 1)
    return a, b, c


class _Tables:
    """The per-slot and per-(slot, variant) lookup tables the generator takes from."""

    def __init__(self) -> None:
        templates = EPISODES
        self.weights = np.array([w for w, _ in templates])
        self.weights /= self.weights.sum()
        self.lengths = np.array([len(s) for _, s in templates])
        self.base = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        slots = [s for _, ss in templates for s in ss]
        self.offset_ms = np.array([s.offset_ms for s in slots])
        self.status = [s.status for s in slots]
        self.has_status = np.array([s.status is not None for s in slots])
        self.err_status = np.array([s.status == "err" for s in slots])
        self.has_duration = np.array([s.duration for s in slots])
        heads, msg_ids, data_ids = [], [], []
        messages: list[tuple[int, str]] = []
        for group in (INFO, TRACES, STEP_LINES, RARE):
            messages += group
        self.rare_message = len(messages) - 1
        index = {m: i for i, m in enumerate(messages)}
        datas: list[str] = []
        for s in slots:
            for v in range(VARIANTS):
                head = f',"kind":"{s.kind}"'
                if s.type:
                    head += f',"type":"{s.type}"'
                if s.names:
                    head += f',"name":"{_esc(s.names[v % len(s.names)])}"'
                heads.append(head)
                msg_ids.append(index[s.messages[v % len(s.messages)]] if s.messages else -1)
                if s.data:
                    d = s.data[v % len(s.data)]
                    if d not in datas:
                        datas.append(d)
                    data_ids.append(datas.index(d))
                else:
                    data_ids.append(-1)
        self.heads = pa.array(heads)
        self.msg_ids = np.array(msg_ids)
        self.data_ids = np.array(data_ids)
        self.id_suffix = pa.array([None if s.id is None else s.id and "." + s.id for s in slots])
        self.parent_suffix = pa.array(
            [None if s.parent is None else s.parent and "." + s.parent for s in slots]
        )
        pieces = [_split(_esc(text)) for _, text in messages]
        self.msg_a = pa.array(
            [
                f',"severity":{sev},"message":"' + p[0]
                for (sev, _), p in zip(messages, pieces, strict=True)
            ]
        )
        self.msg_b = pa.array([p[1] for p in pieces])
        self.msg_c = pa.array([p[2] + '"' for p in pieces])
        self.msg_first_is_a = np.array([t.find("%A") < t.find("%B") for _, t in messages])
        self.data_a = pa.array([',"data":' + d.split("%C")[0] for d in datas])
        self.data_b = pa.array([d.split("%C")[1] for d in datas])


def _take(table: pa.Array, ids: np.ndarray) -> pa.Array:
    """``table[ids]``, null where ``ids`` is -1."""
    mask = ids < 0
    return table.take(pa.array(np.where(mask, 0, ids), mask=mask))


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _join(*parts: pa.Array | str, skip_nulls: bool = False) -> pa.Array:
    """Concatenate string columns element-wise; a null part makes the result null unless skipped."""
    return pc.binary_join_element_wise(
        *parts, "", null_handling="skip" if skip_nulls else "emit_null"
    )


def _array_bytes(arr: pa.Array) -> bytes:
    """The concatenated values of a string array, without copying them one by one."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = arr.buffers()[2]
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


@dataclasses.dataclass
class Block:
    """One time slice of a payload: JSON lines (or syslog frames) ready to send."""

    data: bytes
    entries: int
    last_ts: float


class EventLogGenerator:
    """Generates event-log JSON lines in blocks of whole episodes, oldest first."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = np.random.default_rng(seed)
        self.fleet = Fleet.build()
        self.host_frags = self.fleet.fragments()
        self.t = _Tables()
        self.next_episode = 0

    def block(self, entries: int, start_ms: int, end_ms: int, rare: int = 0) -> Block:
        """About ``entries`` entries (whole episodes) with episode starts in [start_ms, end_ms).

        ``rare`` plain-line entries get the rare-word message.
        """
        t, rng = self.t, self.rng
        n_ep = max(1, int(entries / float(t.weights @ t.lengths)))
        kind = rng.choice(len(t.weights), size=n_ep, p=t.weights)
        lengths = t.lengths[kind]
        n = int(lengths.sum())
        ep_of = np.repeat(np.arange(n_ep), lengths)
        first = np.cumsum(lengths) - lengths
        slot = t.base[kind][ep_of] + (np.arange(n) - first[ep_of])
        variant = rng.integers(0, VARIANTS, size=n_ep)[ep_of]
        sv = slot * VARIANTS + variant
        host = rng.integers(0, len(self.fleet.hosts), size=n_ep)[ep_of]
        begin = np.sort(rng.integers(start_ms, end_ms, size=n_ep))[ep_of]
        scale = rng.lognormal(0.0, 0.6, size=n_ep)[ep_of]
        ts_ms = begin + np.rint(t.offset_ms[slot] * scale).astype(np.int64)
        ts_ms = np.minimum(ts_ms, end_ms - 1)
        ep_id = self.next_episode + np.arange(n_ep)[ep_of]
        self.next_episode += n_ep

        ts = _join('{"ts":', _text(ts_ms // 1000), ".", pc.utf8_lpad(_text(ts_ms % 1000), 3, "0"))
        eid = _text(ep_id)
        ident = _join(',"id":"e', eid, t.id_suffix.take(pa.array(slot)), '"')
        parent = _join(',"parent":"e', eid, t.parent_suffix.take(pa.array(slot)), '"')

        err = t.err_status[slot] | (rng.random(n) < 0.02)
        codes = rng.choice(np.array([1, 2, 404, 500, 503, 1205]), size=n)
        status_val = np.where(err, codes, 0)
        status = _take(pa.array([',"status":']), np.where(t.has_status[slot], 0, -1))
        status = _join(status, _text(status_val))
        dur = np.round(rng.lognormal(1.0, 1.0, size=n) + t.offset_ms[slot] * scale, 1)
        duration = _take(pa.array([',"duration_ms":']), np.where(t.has_duration[slot], 0, -1))
        duration = _join(duration, _text(dur))

        msg = t.msg_ids[sv]
        if rare:
            lines = np.flatnonzero(msg >= 0)
            lines = lines[t.msg_ids[sv[lines]] < len(INFO)]
            picks = rng.choice(lines, size=min(rare, len(lines)), replace=False)
            msg[picks] = t.rare_message
        num_a = _text(rng.integers(1, 1_000_000, size=n))
        num_b = _text(rng.integers(1, 2_000, size=n))
        a_first = pa.array(t.msg_first_is_a[np.maximum(msg, 0)])
        x, y = pc.if_else(a_first, num_a, num_b), pc.if_else(a_first, num_b, num_a)
        message = _join(_take(t.msg_a, msg), x, _take(t.msg_b, msg), y, _take(t.msg_c, msg))
        did = t.data_ids[sv]
        data = _join(_take(t.data_a, did), _text(rng.integers(1, 90, size=n)), _take(t.data_b, did))

        line = _join(
            ts,
            t.heads.take(pa.array(sv)),
            self.host_frags.take(pa.array(host)),
            ident,
            parent,
            status,
            duration,
            message,
            data,
            "}\n",
            skip_nulls=True,
        )
        return Block(_array_bytes(line), n, float(ts_ms.max()) / 1000)


def eventlog_blocks(
    entries: int, span_s: float, block_entries: int, rare_count: int = 0, seed: int = 42
) -> Iterator[Block]:
    """Blocks of about ``entries`` entries in all, time slices of the last ``span_s`` seconds.

    The newest entry is a second before the call; ``rare_count`` entries,
    spread over the blocks, carry ``RARE_WORD``.
    """
    gen = EventLogGenerator(seed)
    end_ms = int(time.time() * 1000) - 1000
    start_ms = end_ms - int(span_s * 1000)
    n_blocks = max(1, round(entries / block_entries))
    edges = np.linspace(start_ms, end_ms, n_blocks + 1).astype(np.int64)
    rare = (
        np.bincount(
            np.linspace(0, n_blocks - 1, rare_count).round().astype(int), minlength=n_blocks
        )
        if rare_count
        else np.zeros(n_blocks, int)
    )
    for i in range(n_blocks):
        size = entries // n_blocks + (i < entries % n_blocks)
        yield gen.block(size, int(edges[i]), int(edges[i + 1]), int(rare[i]))


# --- syslog ---------------------------------------------------------------------------

_SD = (
    '[meta@32473 region="eu" build="4.2.1"]',
    '[origin ip="10.20.3.7" software="nginx"][req@32473 id="%C"]',
    "-",
)
_FACILITIES = np.array([1, 3, 4, 16, 17, 18, 23])
_MONTHS = pa.array(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
)


def syslog_block(
    rng: np.random.Generator, fleet: Fleet, n: int, start_ms: int, end_ms: int
) -> Block:
    """``n`` syslog messages: half RFC 5424 with octet counting, half RFC 3164 newline-framed.

    Messages use the plain-line templates; severity comes from the template,
    facility varies, RFC 5424 messages carry procid and msgid and one in ten
    carries structured data.
    """
    ts_ms = np.sort(rng.integers(start_ms, end_ms, size=n))
    host = rng.integers(0, len(fleet.hosts), size=n)
    tpl = rng.integers(0, len(INFO), size=n)
    pieces = [_split(text) for _, text in INFO]
    first_a = pa.array(np.array([t.find("%A") < t.find("%B") for _, t in INFO])[tpl])
    num_a = _text(rng.integers(1, 1_000_000, size=n))
    num_b = _text(rng.integers(1, 2_000, size=n))
    x, y = pc.if_else(first_a, num_a, num_b), pc.if_else(first_a, num_b, num_a)
    idx = pa.array(tpl)
    msg = _join(
        pa.array([p[0] for p in pieces]).take(idx), x,
        pa.array([p[1] for p in pieces]).take(idx), y,
        pa.array([p[2] for p in pieces]).take(idx),
    )  # fmt: skip
    sev = np.array([s for s, _ in INFO])[tpl]
    pri = _text(rng.choice(_FACILITIES, size=n) * 8 + sev)
    hosts = pa.array(fleet.hosts).take(pa.array(host))
    apps = pa.array(fleet.apps).take(pa.array(host))
    pid = _text(rng.integers(100, 40_000, size=n))
    stamp = pa.array(ts_ms.astype("datetime64[ms]"))
    iso = _text(np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms"))
    # Most RFC 5424 senders (rsyslog's and systemd's templates) write "-" unless
    # the source gave structured data: one message in ten carries some here.
    sd_id = rng.choice(len(_SD), size=n, p=[0.05, 0.05, 0.9])
    sd_a = pa.array([s.split("%C")[0] for s in _SD]).take(pa.array(sd_id))
    sd_b = pa.array([s.split("%C")[1] if "%C" in s else "" for s in _SD]).take(pa.array(sd_id))
    sd_num = pc.if_else(
        pa.array(sd_id == 1), _text(rng.integers(1, 10**9, size=n)), pa.array([""] * n)
    )
    msgid = pa.array(["-", "ID47", "req", "audit"]).take(pa.array(rng.integers(0, 4, size=n)))
    rfc5424 = _join(
        "<",
        pri,
        ">1 ",
        iso,
        "Z ",
        hosts,
        " ",
        apps,
        " ",
        pid,
        " ",
        msgid,
        " ",
        sd_a,
        sd_num,
        sd_b,
        " ",
        msg,
    )
    framed5424 = _join(
        _text(pc.binary_length(rfc5424).to_numpy(zero_copy_only=False)), " ", rfc5424
    )
    month = _MONTHS.take(pc.subtract(pc.month(stamp), 1))
    day = pc.utf8_lpad(pc.cast(pc.day(stamp), pa.string()), 2, " ")
    clock = pc.strftime(pa.array((ts_ms // 1000).astype("datetime64[s]")), format="%H:%M:%S")
    rfc3164 = _join(
        "<",
        pri,
        ">",
        month,
        " ",
        day,
        " ",
        clock,
        " ",
        hosts,
        " ",
        apps,
        "[",
        pid,
        "]: ",
        msg,
        "\n",
    )
    is5424 = pa.array(rng.random(n) < 0.5)
    frames = pc.if_else(is5424, framed5424, rfc3164)
    return Block(_array_bytes(frames), n, float(ts_ms.max()) / 1000)


def syslog_blocks(
    messages: int, span_s: float, block_entries: int, seed: int = 43
) -> Iterator[Block]:
    """Blocks of ``messages`` syslog frames in all, over the last ``span_s`` seconds."""
    rng = np.random.default_rng(seed)
    fleet = Fleet.build()
    end_ms = int(time.time() * 1000) - 1000
    start_ms = end_ms - int(span_s * 1000)
    n_blocks = max(1, round(messages / block_entries))
    edges = np.linspace(start_ms, end_ms, n_blocks + 1).astype(np.int64)
    for i in range(n_blocks):
        size = messages // n_blocks + (i < messages % n_blocks)
        yield syslog_block(rng, fleet, size, int(edges[i]), int(edges[i + 1]))
