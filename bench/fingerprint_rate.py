"""Fingerprinting rate: error entries per second through ``vigil.cube.fingerprint.errors_of``.

Run from the repository root::

    .venv/bin/python bench/fingerprint_rate.py            # 200,000 entries, 5 runs
    .venv/bin/python bench/fingerprint_rate.py --entries 500000 --runs 7

The batch is what a fleet sends when things go wrong: 30% Python tracebacks
(several exceptions, some chained, from different frames), 20% Java traces
with ``Caused by:`` and generated lambda/accessor classes, 10% Go panics, 40%
plain error lines and failed transactions; every occurrence has its own host,
request id, line-number deploy, goroutine id, addresses and quoted values, so
the masking has work to do. Printed: the median and best of ``--runs`` runs
for that mix (all entries are errors: the worst case per entry), for a
stream where one entry in ten is an error, and for a mix where every trace
is distinct (no two share frames: the slow path's floor). Target: 100,000
error entries/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from vigil.cube.fingerprint import errors_of
from vigil.model import logs_from_rows

T0 = 1_763_900_000_000


def word(rng: random.Random) -> str:
    """A random name without digits (numbers are masked: they would not make a frame distinct)."""
    return "".join(rng.choices(string.ascii_lowercase, k=10))


def python_trace(rng: random.Random, shape: int, distinct: bool) -> str:
    fn = "handler_" + word(rng) if distinct else f"handler_{shape}"
    exc = ["KeyError", "ValueError", "shop.errors.OutOfStock", "TimeoutError"][shape % 4]
    deploy = rng.choice([20261101, 20261115])
    trace = (
        f"request {rng.getrandbits(64):016x} failed\n"
        "Traceback (most recent call last):\n"
        f'  File "/srv/shop/releases/{deploy}/shop/views.py", line {30 + shape}, in dispatch\n'
        "    return view(request)\n"
        f'  File "/srv/shop/releases/{deploy}/shop/cart.py", line {90 + shape}, in {fn}\n'
        f"    price = prices[item['sku']] * qty\n"
        f"            ~~~~~~^^^^^^^^^^^^^\n"
        f"{exc}: 'sku-{rng.randrange(10**6)}'"
    )
    if shape % 3 == 0:
        trace = (
            "Traceback (most recent call last):\n"
            '  File "/usr/lib/python3.12/site-packages/psycopg/connection.py", line 119, in connect\n'
            "    raise last_ex.with_traceback(None)\n"
            f'psycopg.OperationalError: connection to server at "10.0.{rng.randrange(256)}.'
            f'{rng.randrange(256)}" failed\n\n'
            "The above exception was the direct cause of the following exception:\n\n" + trace
        )
    return trace


def java_trace(rng: random.Random, shape: int, distinct: bool) -> str:
    method = "load_" + word(rng) if distinct else f"load{shape}"
    n = rng.randrange(1, 2000)
    return (
        f"2026-11-23 10:00:00.123 ERROR [http-nio-8080-exec-{n}] c.e.shop.Cart - failed\n"
        f"java.lang.IllegalStateException: Failed to load cart {rng.randrange(10**7)}\n"
        f"\tat com.example.shop.CartController.show(CartController.java:{50 + shape})\n"
        f"\tat com.example.shop.CartController$$Lambda${n}/0x{rng.getrandbits(40):016x}.apply(Unknown Source)\n"
        f"\tat jdk.internal.reflect.GeneratedMethodAccessor{n}.invoke(Unknown Source)\n"
        "\tat java.base/java.lang.reflect.Method.invoke(Method.java:580)\n"
        "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)\n"
        "\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)\n"
        "\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:195)\n"
        'Caused by: java.lang.NullPointerException: Cannot invoke "String.length()" because "sku" is null\n'
        f"\tat com.example.shop.CartService.{method}(CartService.java:{140 + shape})\n"
        "\tat com.example.shop.CartController.show(CartController.java:55)\n"
        f"\t... {rng.randrange(20, 60)} more"
    )


def go_panic(rng: random.Random, shape: int, distinct: bool) -> str:
    fn = "handle_" + word(rng) if distinct else f"handle{shape}"
    g = rng.randrange(1, 10**5)
    base = f"c{rng.getrandbits(36):09x}"
    i = rng.randrange(3, 100)
    return (
        f"panic: runtime error: index out of range [{i}] with length {i - 1}\n\n"
        f"goroutine {g} [running]:\n"
        f"main.(*Server).{fn}(0x{base}, {{0x{base}1, 0x1f}})\n"
        f"\t/home/build/src/shop/server.go:{80 + shape} +0x1d4\n"
        f"net/http.HandlerFunc.ServeHTTP(0x{base}2, {{0x7f, 0x{base}3}}, 0x{base}4)\n"
        "\t/usr/local/go/src/net/http/server.go:2136 +0x29\n"
        f"net/http.serverHandler.ServeHTTP({{0x{base}5}}, {{0x7f, 0x{base}6}}, 0x{base}7)\n"
        "\t/usr/local/go/src/net/http/server.go:2938 +0x8e\n"
        f"created by net/http.(*Server).Serve in goroutine {rng.randrange(1, 50)}\n"
        "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4"
    )


def plain_line(rng: random.Random, shape: int, distinct: bool) -> str:
    lines = [
        "upstream {ip}:8080 timed out after {n} ms (request {hex})",
        "user {email} denied: order {n} belongs to account {uuid}",
        "cannot acquire lock 'cart-{n}' held by worker {n}",
        "payment {uuid} declined: card ending {n}",
        "disk /data{n} at {n}% on volume 0x{hex}",
    ]
    return lines[shape % len(lines)].format(
        ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        n=rng.randrange(10**6),
        hex=f"{rng.getrandbits(48):012x}",
        email=f"u{rng.randrange(10**5)}@example.com",
        uuid=f"{rng.getrandbits(128):032x}",
    )


MAKERS: list[tuple[float, Callable[[random.Random, int, bool], str]]] = [
    (0.3, python_trace),
    (0.2, java_trace),
    (0.1, go_panic),
    (0.4, plain_line),
]


def batch(entries: int, error_share: float, distinct: bool, seed: int = 1) -> pa.Table:
    """A ``LOGS_SCHEMA`` batch of ``entries``, ``error_share`` of them errors of the mix."""
    rng = random.Random(seed)
    weights = [w for w, _ in MAKERS]
    rows: list[dict[str, Any]] = []
    for i in range(entries):
        host = f"web{rng.randrange(1000):03d}"
        row: dict[str, Any] = {"ts": T0 + i, "uid": i, "host": host, "app": f"app{i % 20}"}
        if rng.random() < error_share:
            (maker,) = rng.choices([m for _, m in MAKERS], weights)
            row["message"] = maker(rng, rng.randrange(12), distinct)
            if maker is plain_line:
                row["severity"] = 3
        else:
            row["message"] = f"GET /cart/{rng.randrange(10**6)} 200 {rng.randrange(900)} ms"
            row["kind"] = "atomic"
        rows.append(row)
    return logs_from_rows(rows)


def measure(table: pa.Table, runs: int) -> tuple[float, float, int]:
    """Median and best entries/s over ``runs`` runs, and the errors found."""
    rates = []
    found = 0
    for _ in range(runs):
        start = time.perf_counter()
        found = errors_of(table).num_rows
        rates.append(table.num_rows / (time.perf_counter() - start))
    return statistics.median(rates), max(rates), found


def main() -> None:
    """Build the batches, then time ``errors_of`` on each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cases = [
        ("all errors, realistic mix", 1.0, False),
        ("1 error in 10 entries", 0.1, False),
        ("all errors, every trace distinct", 1.0, True),
    ]
    print(f"{'case':36} {'entries':>9} {'errors':>9} {'median/s':>12} {'best/s':>12}")
    for name, share, distinct in cases:
        table = batch(args.entries, share, distinct)
        median, best, found = measure(table, args.runs)
        print(f"{name:36} {table.num_rows:>9,} {found:>9,} {median:>12,.0f} {best:>12,.0f}")
    print("target: 100,000 error entries/s")


if __name__ == "__main__":
    main()
