from collections.abc import Sequence

from tests.query.memsource import MemorySource
from vigil.query.prefetch import Prefetch, paths_of
from vigil.query.series import Series

START = 1_700_000_000


class Counting(MemorySource):
    """A memory source that counts the storage reads asked of it."""

    def __init__(self) -> None:
        super().__init__(step=60)
        self.fetches: list[list[str]] = []

    def fetch(self, patterns: Sequence[str], start: int, end: int) -> list[Series]:
        self.fetches.append(list(patterns))
        return super().fetch(patterns, start, end)


def source() -> Counting:
    s = Counting()
    for path in ("a.b.c", "a.b.d", "a.bb.c", "a.x.c", "z.y"):
        s.add(path, START, [1.0, 2.0, 3.0])
    return s


def names(series: list[Series]) -> list[str]:
    return [s.name for s in series]


def test_paths_of_lists_every_path_of_an_expression() -> None:
    assert paths_of("sumSeries(a.b.*, scale(z.y, 2), alias(a.{b,x}.c, 'n'))") == (
        "a.b.*", "z.y", "a.{b,x}.c")  # fmt: skip


def test_known_patterns_are_answered_from_one_read_as_storage_would() -> None:
    patterns = ["a.b.*", "a.{b,x}.c", "z.y", "a.b?.c", "missing.*", "a.b.c"]
    storage = source()
    prefetch = Prefetch(storage, patterns, START, START + 180)
    assert len(storage.fetches) == 1
    for p in patterns:
        assert names(prefetch.fetch([p], START, START + 180)) == names(
            source().fetch([p], START, START + 180)), p  # fmt: skip
    assert names(prefetch.fetch(["a.b.*", "a.b.c"], START, START + 180)) == ["a.b.c", "a.b.d"]
    assert len(storage.fetches) == 1  # no more reads


def test_other_patterns_and_ranges_go_to_storage() -> None:
    storage = source()
    prefetch = Prefetch(storage, ["a.b.c"], START, START + 180)
    assert names(prefetch.fetch(["a.x.c"], START, START + 180)) == ["a.x.c"]
    assert names(prefetch.fetch(["a.b.c"], START - 60, START + 180)) == ["a.b.c"]
    assert storage.fetches[1:] == [["a.x.c"], ["a.b.c"]]
