"""The cube writer gathers stored batches and inserts their partial cubes at once."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from vigil.model import logs_from_rows
from vigil.query.cubequery import STEPS
from vigil.store.cubewriter import CubeWriter

T0 = 1_763_900_000


def batch(n: int, kind: str = "end") -> pa.Table:
    return logs_from_rows(
        [{"ts": (T0 + i) * 1000, "uid": i + 1, "kind": kind, "duration_ms": 2.0} for i in range(n)]
    )


class Inserts:
    """The inserts a writer made, and a way to wait for them."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []  # (step, sum of cnt)
        self.done = threading.Event()

    def __call__(self, step: int, rows: pa.Table) -> None:
        self.rows.append((step, sum(rows.column("cnt").to_pylist())))
        self.done.set()


def test_a_read_waits_for_every_steps_insert_each_on_a_prepared_thread() -> None:
    prepared: set[int] = set()
    stored: list[int] = []

    def slow_insert(step: int, rows: pa.Table) -> None:
        assert threading.get_ident() in prepared  # the connection's settings come first
        time.sleep(0.05 if step == STEPS[0] else 0.2)  # the coarse steps finish last
        stored.append(step)

    writer = CubeWriter(slow_insert, lambda: prepared.add(threading.get_ident()))
    writer.write(batch(10))
    writer.settle()
    assert sorted(stored) == sorted(STEPS)
    writer.close()


def test_batches_are_gathered_until_a_read_asks_then_inserted_once_per_level() -> None:
    inserts = Inserts()
    writer = CubeWriter(inserts, batch_entries=1_000, max_delay=60)
    for _ in range(3):
        writer.write(batch(10))
    writer.write(batch(5, kind="line"))  # not counted by the cube, but waited for
    time.sleep(0.2)
    assert inserts.rows == []
    writer.settle()
    assert sorted(inserts.rows) == [(step, 30) for step in STEPS]
    writer.close()


def test_enough_entries_or_the_delay_flush_without_a_read() -> None:
    inserts = Inserts()
    writer = CubeWriter(inserts, batch_entries=20, max_delay=60)
    writer.write(batch(15))
    writer.write(batch(15))  # 30 >= 20: counted now
    assert inserts.done.wait(10)
    writer.close()
    assert sorted(inserts.rows) == [(step, 30) for step in STEPS]

    inserts = Inserts()
    writer = CubeWriter(inserts, batch_entries=1_000, max_delay=0.1)
    writer.write(batch(3))
    assert inserts.done.wait(10)
    writer.close()
    assert sorted(inserts.rows) == [(step, 3) for step in STEPS]


def test_close_counts_what_is_gathered() -> None:
    inserts = Inserts()
    writer = CubeWriter(inserts, batch_entries=1_000, max_delay=60)
    writer.write(batch(4))
    writer.close()
    assert sorted(inserts.rows) == [(step, 4) for step in STEPS]
    writer.settle()  # nothing pending: returns at once
