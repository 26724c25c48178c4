"""Error fingerprints: which entries are errors, and the same error from anywhere groups as one."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.cube.fingerprint import ERRORS_SCHEMA, errors_of, mask_lines, trace_key
from vigil.model import logs_from_rows

T0 = 1_763_900_000_000


def py_keyerror(host: str, request: str, line: int = 42) -> str:
    return (
        f"request {request} failed\n"
        "Traceback (most recent call last):\n"
        f'  File "/srv/{host}/releases/20261101{line}/shop/views.py", line {line}, in checkout\n'
        "    total = cart.add(item)\n"
        f'  File "/srv/{host}/releases/20261101{line}/shop/cart.py", line {line + 7}, in add\n'
        "    price = prices[item['sku']]\n"
        "            ~~~~~~^^^^^^^^^^^^^\n"
        "KeyError: 'sku'"
    )


def py_chained(user: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.12/site-packages/psycopg/connection.py", line 119, in connect\n'
        "    raise last_ex.with_traceback(None)\n"
        f'psycopg.OperationalError: connection to server at "10.0.3.{user}" failed\n'
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/app/shop/db.py", line 31, in session\n'
        "    conn = pool.getconn()\n"
        f"shop.db.DatabaseDown: no database for user {user}"
    )


def py_zero_division(request: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/app/shop/views.py", line 88, in report\n'
        "    return total / count\n"
        f"ZeroDivisionError: division by zero (request {request})"
    )


def java_npe(host: str, lam: int, addr: str, line: int = 57) -> str:
    return (
        f"2026-11-23 10:00:00.123 ERROR [http-nio-8080-exec-{lam}] c.e.shop.CartController - failed on {host}\n"
        "java.lang.IllegalStateException: Failed to load cart 4711\n"
        f"\tat com.example.shop.CartController.show(CartController.java:{line})\n"
        f"\tat com.example.shop.CartController$$Lambda${lam}/0x{addr}.apply(Unknown Source)\n"
        f"\tat jdk.internal.reflect.GeneratedMethodAccessor{lam}.invoke(Unknown Source)\n"
        "\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)\n"
        "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)\n"
        'Caused by: java.lang.NullPointerException: Cannot invoke "String.length()" because "sku" is null\n'
        f"\tat com.example.shop.CartService.load(CartService.java:{line + 100})\n"
        "\tat com.example.shop.CartController.show(CartController.java:55)\n"
        "\t... 42 more"
    )


def java_timeout(ms: int) -> str:
    return (
        'Exception in thread "main" java.net.SocketTimeoutException: Read timed out after '
        f"{ms} ms\n"
        "\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)\n"
        "\tat com.example.client.Api.call(Api.java:40)"
    )


def go_panic(goroutine: int, index: int, base: str) -> str:
    return (
        f"panic: runtime error: index out of range [{index}] with length {index - 2}\n"
        "\n"
        f"goroutine {goroutine} [running]:\n"
        f"main.(*Server).handleOrder(0x{base}, {{0x{base}1, 0x1f}})\n"
        f"\t/home/build{goroutine}/src/shop/server.go:{index + 80} +0x1d4\n"
        f"net/http.HandlerFunc.ServeHTTP(0x{base}2, {{0x7f, 0x{base}3}}, 0x{base}4)\n"
        "\t/usr/local/go/src/net/http/server.go:2136 +0x29\n"
        f"created by net/http.(*Server).Serve in goroutine {goroutine + 1}\n"
        "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4\n"
        "\n"
        f"goroutine {goroutine + 7} [IO wait]:\n"
        "internal/poll.runtime_pollWait(0x7f)\n"
        "\t/usr/local/go/src/runtime/netpoll.go:343 +0x85"
    )


def go_nil(goroutine: int) -> str:
    return (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        f"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x{goroutine:x}]\n"
        "\n"
        f"goroutine {goroutine} [running]:\n"
        "main.(*Server).handleOrder(0x0)\n"
        f"\t/home/build/src/shop/server.go:{goroutine} +0x1d4"
    )


def entry(message: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"ts": T0, "uid": 1, "host": "web01", "app": "shop", "message": message}
    row.update(kw)
    return row


def fingerprints(*rows: dict[str, Any]) -> list[int]:
    errors = errors_of(logs_from_rows(list(rows)))
    assert errors.num_rows == len(rows)
    return [int(f) for f in errors.column("fingerprint").to_pylist()]


SAME = [
    (py_keyerror("web01", "7f3a", 42), py_keyerror("web02", "9c1e", 51)),
    (py_chained("17"), py_chained("203")),
    (java_npe("web01", 12, "000000080012c440", 57), java_npe("web07", 977, "00000008001f9a08", 61)),
    (java_timeout(30000), java_timeout(5000)),
    (go_panic(18, 5, "c000012345"), go_panic(4417, 9, "c0004a0ff0")),
    (go_nil(7), go_nil(1234)),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_error_from_other_hosts_and_requests_has_one_fingerprint(a: str, b: str) -> None:
    fa, fb = fingerprints(entry(a, host="web01"), entry(b, host="db9", uid=2, ts=T0 + 5))
    assert fa == fb


def test_different_errors_have_different_fingerprints() -> None:
    messages = [a for a, _ in SAME] + [py_zero_division("1")]
    found = fingerprints(*(entry(m) for m in messages))
    assert len(set(found)) == len(messages)


def test_a_moved_frame_is_another_error() -> None:
    other = py_keyerror("web01", "7f3a").replace("in add", "in remove")
    assert len(set(fingerprints(entry(py_keyerror("web01", "1")), entry(other)))) == 2


@pytest.mark.parametrize(
    ("message", "title"),
    [
        (py_keyerror("web01", "7f3a"), "KeyError: '<q>'".replace("<q>", "sku")),
        (py_chained("17"), "shop.db.DatabaseDown: no database for user <n>"),
        (
            java_npe("web01", 1, "00000008"),
            "java.lang.IllegalStateException: Failed to load cart <n>",
        ),
        (java_timeout(3), "java.net.SocketTimeoutException: Read timed out after <n> ms"),
        (go_panic(1, 5, "c0"), "panic: runtime error: index out of range"),
        (
            "user bob@example.com from 10.0.0.7:5432 sent 'x y' id 3f2a9c8b7d",
            "user <email> from <ip> sent '<q>' id <n>",
        ),
    ],
)
def test_titles(message: str, title: str) -> None:
    (got,) = errors_of(logs_from_rows([entry(message, status=1)])).column("title").to_pylist()
    assert got == title


def test_trace_keys_hold_types_and_frames_without_numbers() -> None:
    key, _ = trace_key(java_npe("web01", 1, "0").replace("57", "<n>")) or ("", "")
    assert "java.lang.IllegalStateException,java.lang.NullPointerException" in key
    assert "com.example.shop.CartService.load(CartService.java)" in key
    assert "java.lang.reflect.Method.invoke(Method.java)" in key  # module prefix dropped
    assert trace_key("no trace here") is None


def test_which_entries_are_errors() -> None:
    rows = [
        entry("fine", uid=1),
        entry("", uid=2, kind="end", status=500, type="URL", name="GET /cart"),
        entry("disk full", uid=3, severity=3),
        entry("just a warning", uid=4, severity=4),
        entry(py_keyerror("web01", "1"), uid=5),
        entry("notice", uid=6, severity=5),
    ]
    errors = errors_of(logs_from_rows(rows))
    assert errors.schema == ERRORS_SCHEMA
    assert errors.column("uid").to_pylist() == [2, 3, 5]
    assert errors.column("title").to_pylist()[0] == "URL GET /cart status 500"
    assert errors_of(logs_from_rows([entry("ok")])).num_rows == 0


def test_plain_lines_group_by_app_and_masked_line() -> None:
    a = entry("timeout after 3000 ms talking to 10.1.2.3", severity=3)
    b = entry("timeout after 12 ms talking to 10.9.8.7", severity=3, host="web9")
    c = entry("timeout after 12 ms talking to 10.9.8.7", severity=3, app="billing")
    fa, fb, fc = fingerprints(a, b, c)
    assert fa == fb != fc


def test_many_chunks_and_rows_keep_their_order() -> None:
    rows = [entry(py_keyerror(f"web{i}", str(i)), uid=i) for i in range(50)]
    rows += [entry(f"failed {i}", uid=100 + i, status=1) for i in range(50)]
    batch = pa.concat_tables([logs_from_rows(rows[:30]), logs_from_rows(rows[30:])])
    errors = errors_of(batch)
    assert errors.column("uid").to_pylist() == [r["uid"] for r in rows]
    assert len(set(errors.column("fingerprint").to_pylist())) == 2


# -- properties ---------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.sampled_from("ab xyz0129fF.-@:'\"=,()[]{}_<>\\/\t"), max_size=60
) | st.text(max_size=40)


@given(st.lists(_TEXT, min_size=1, max_size=5))
def test_masking_is_idempotent(lines: list[str]) -> None:
    once = mask_lines(pa.array(lines, pa.string()))
    assert mask_lines(once).to_pylist() == once.to_pylist()


# Two values of one kind of id: a slot of a message holds one kind.
_IDS = st.one_of(
    *(
        st.tuples(kind, kind)
        for kind in [
            st.integers(0, 10**12).map(str),
            st.integers(0, 2**64 - 1).map(lambda n: f"{n:x}".zfill(16)),
            st.uuids().map(str),
            st.integers(0, 2**64 - 1).map(lambda n: f"0x{n:x}"),
            st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
            st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True),
        ]
    )
)


@given(
    st.sampled_from(
        [
            "order {} not found for user {}",
            "connection to {} refused after {} retries",
            "lock '{}' held by {}",
        ]
    ),
    _IDS,
    _IDS,
    st.sampled_from(["web01", "db7", "10.0.0.1"]),
)
def test_lines_differing_in_numbers_and_ids_share_a_fingerprint(
    template: str, first: tuple[str, str], second: tuple[str, str], host: str
) -> None:
    a = entry(template.format(first[0], second[0]), status=1)
    b = entry(template.format(first[1], second[1]), status=1, host=host)
    fa, fb = fingerprints(a, b)
    assert fa == fb


@given(
    st.integers(1, 10**6),
    st.integers(2, 10**4),
    st.integers(0, 2**40).map(lambda n: f"c{n:010x}"),
    st.sampled_from(["web01", "api-3", "db7"]),
)
def test_go_panics_differing_in_ids_share_a_fingerprint(
    goroutine: int, index: int, base: str, host: str
) -> None:
    fa, fb = fingerprints(
        entry(go_panic(goroutine, index, base), host=host), entry(go_panic(1, 3, "c000"))
    )
    assert fa == fb
