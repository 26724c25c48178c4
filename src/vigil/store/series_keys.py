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

from collections.abc import Callable

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


Lookup = Callable[[list[str]], dict[str, int]]


class SeriesKeys:
    """Keys of series paths: ids from the catalogue, or new ones in order of arrival.

    Ids are handed out in the order series first arrive (as VictoriaMetrics
    does), so series that report together, such as one fleet's metrics, are
    neighbours in the (id, time) order of the points table, and a wildcard
    over them reads a few ranges instead of a granule per series. ``lookup``
    finds the ids of paths already in the catalogue (after a restart, or once
    the bounded cache has forgotten them); ``first_id`` is one past the largest
    id stored. A single writer uses one instance.
    """

    def __init__(
        self, policy: StoragePolicy, lookup: Lookup, first_id: int, max_cached: int = 1_000_000
    ) -> None:
        self.policy = policy
        self.lookup = lookup
        self.max_cached = max_cached
        self._next_id = first_id
        self._cache: dict[str, SeriesKey] = {}

    def cached(self, path: str) -> SeriesKey | None:
        """The key of ``path`` if it went through ``encode`` lately (so is in the catalogue)."""
        return self._cache.get(path)

    def forget_all(self) -> None:
        """Look every path up again (after a failed write of the catalogue)."""
        self._cache.clear()

    def _classify(self, normal: str) -> tuple[int, int]:
        method = self.policy.aggregations[self.policy.aggregation_index(normal)].method
        return self.policy.schema_index(normal), METHODS.index(method)

    def encode(
        self, paths: pa.ChunkedArray | pa.Array
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8], npt.NDArray[np.uint8], pa.Table]:
        """Per-row ids, classes and methods of ``paths``, and the catalogue rows of new series.

        The last item is a table (id, path, cls, m) of the series that have no
        id yet, with normalised paths, for the caller to store in the catalogue.
        """
        encoded = pa.chunked_array(paths).combine_chunks().dictionary_encode()
        distinct: list[str] = encoded.dictionary.to_pylist()
        if len(self._cache) + len(distinct) > self.max_cached:
            self._cache.clear()  # bounded; forgotten paths are looked up again
        missing = [p for p in distinct if p not in self._cache]
        fresh: list[tuple[int, str, int, int]] = []
        if missing:
            normals = {p: normalise(p) for p in missing}
            stored = self.lookup(sorted(set(normals.values())))
            for path in missing:
                normal = normals[path]
                cls, method = self._classify(normal)
                sid = stored.get(normal)
                if sid is None:
                    sid = stored[normal] = self._next_id
                    self._next_id += 1
                    fresh.append((sid, normal, cls, method))
                self._cache[path] = (sid, cls, method)
        keys = [self._cache[p] for p in distinct]
        ids = np.fromiter((k[0] for k in keys), np.uint64, len(keys))
        classes = np.fromiter((k[1] for k in keys), np.uint8, len(keys))
        methods = np.fromiter((k[2] for k in keys), np.uint8, len(keys))
        rows = encoded.indices.to_numpy()
        catalogue = pa.table(
            {
                "id": pa.array([f[0] for f in fresh], pa.uint64()),
                "path": pa.array([f[1] for f in fresh], pa.string()),
                "cls": pa.array([f[2] for f in fresh], pa.uint8()),
                "m": pa.array([f[3] for f in fresh], pa.uint8()),
            }
        )
        return ids[rows], classes[rows], methods[rows], catalogue
