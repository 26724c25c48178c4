"""Series ids, retention class and aggregation method, worked out once per series.

Every point needs its series id (the sort key), its retention class (from
storage-schemas) and its method (from storage-aggregation). They depend on
the path only, so they are computed for each distinct path of a batch (a few
thousand) rather than for each point (hundreds of thousands), with Python's
regexes, the same ones the query side uses, and kept in a bounded cache.
A path is tag-normalised first (Graphite 1.1: tags sorted by name), so
``cpu;host=a;dc=x`` and ``cpu;dc=x;host=a`` are one series.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from vigil.store.retention import METHODS, StoragePolicy

SeriesKey = tuple[int, int, int]  # (id, retention class, method index)


def normalise(path: str) -> str:
    """A tagged path with its tags sorted by name; plain paths unchanged.

    >>> normalise("cpu;host=a;dc=x")
    'cpu;dc=x;host=a'
    """
    if ";" not in path:
        return path
    name, *tags = path.split(";")
    return ";".join([name, *sorted(tags)])


def series_id(path: str) -> int:
    """A stable 64-bit id of a normalised path (the same in every process and version)."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little")


class SeriesKeys:
    """Keys of series paths, cached; remembers which paths it has not handed out before."""

    def __init__(self, policy: StoragePolicy, max_cached: int = 1_000_000) -> None:
        self.policy = policy
        self.max_cached = max_cached
        self._cache: dict[str, SeriesKey] = {}

    def key(self, path: str) -> SeriesKey:
        """The (id, class, method) of one path."""
        found = self._cache.get(path)
        if found is None:
            normal = normalise(path)
            method = self.policy.aggregations[self.policy.aggregation_index(normal)].method
            found = (series_id(normal), self.policy.schema_index(normal), METHODS.index(method))
            if len(self._cache) >= self.max_cached:
                self._cache.clear()  # bounded: a forgotten path is only re-registered
            self._cache[path] = found
        return found

    def known(self, path: str) -> bool:
        """Whether ``path`` went through ``encode`` (and so is in the catalogue) lately."""
        return path in self._cache

    def forget_all(self) -> None:
        """Treat every path as new again (after a failed write of the catalogue)."""
        self._cache.clear()

    def encode(
        self, paths: pa.ChunkedArray | pa.Array
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.uint8], pa.Table]:
        """Per-row ids, classes and methods of ``paths``, and the rows for paths first seen.

        The last item is a table (id, path, cls, m) of the paths this object
        had not seen before, normalised, for the series catalogue.
        """
        encoded = pa.chunked_array(paths).combine_chunks().dictionary_encode()
        distinct = encoded.dictionary.to_pylist()
        fresh = [p for p in distinct if p not in self._cache]
        keys = [self.key(p) for p in distinct]
        ids = np.fromiter((k[0] for k in keys), np.uint64, len(keys))
        classes = np.fromiter((k[1] for k in keys), np.uint8, len(keys))
        methods = np.fromiter((k[2] for k in keys), np.uint8, len(keys))
        rows = encoded.indices.to_numpy()
        fresh_keys = [self.key(p) for p in fresh]
        catalogue = pa.table(
            {
                "id": pa.array([k[0] for k in fresh_keys], pa.uint64()),
                "path": pa.array([normalise(p) for p in fresh], pa.string()),
                "cls": pa.array([k[1] for k in fresh_keys], pa.uint8()),
                "m": pa.array([k[2] for k in fresh_keys], pa.uint8()),
            }
        )
        return ids[rows], classes[rows], methods[rows], catalogue
