"""The cube HTTP API: ``GET /api/cube`` (see ``docs/cubes.md``).

``GET /api/cube?from=-1d&until=now&step=1h&measures=count,errors,p99
&group_by=datacenter,cluster,host&app=shop&rollup=1`` answers
``{"columns": [...], "rows": [[...], ...]}``. Without ``step`` the measures
cover the whole range (a table); with it each row carries its bucket (time
series). ``datacenter`` may be written ``dc``.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.query.cubequery import DIMENSIONS, CubeQuery, CubeQueryError
from vigil.query.timeparse import parse_interval, parse_time
from vigil.store.interface import Storage, StorageError
from vigil.web.jsonio import json_response

ALIASES = {"datacenter": "dc", "application": "app"}


def _dimension(name: str) -> str:
    return ALIASES.get(name, name)


def cube_query(params: dict[str, list[str]], now: float) -> tuple[CubeQuery, dict[str, str]]:
    """The ``CubeQuery`` of API parameters, and the names the caller used for dimensions."""

    def one(key: str, default: str = "") -> str:
        values = params.get(key)
        return values[0] if values else default

    try:
        start = parse_time(one("from", "-1h"), int(now))
        until = one("until", "now")
        end = parse_time(until, int(now)) + (until == "now")
        step = parse_interval(one("step")) if one("step") else None
    except ValueError as e:
        raise CubeQueryError(f"from/until/step: {e}") from None
    words = [w for w in one("group_by").split(",") if w.strip()]
    named = {_dimension(w.strip()): w.strip() for w in words}
    filters: dict[str, tuple[str, ...]] = {}
    for key, values in params.items():
        dim = _dimension(key)
        if dim in DIMENSIONS:
            filters[dim] = tuple(v for value in values for v in value.split(","))
    measures = tuple(m.strip() for m in one("measures", "count").split(",") if m.strip())
    q = CubeQuery(
        start,
        end,
        measures=measures,
        group_by=tuple(named),
        filters=filters,
        step=step,
        rollup=one("rollup") in ("1", "true", "yes"),
    )
    return q, named


def cube_routes(storage: Storage, clock: Callable[[], float] = time.time) -> list[BaseRoute]:
    """The routes of the cube API over this node's storage."""

    async def cube(request: Request) -> Response:
        params = urllib.parse.parse_qs(request.url.query)
        try:
            q, named = cube_query(params, clock())
            result = await run_in_threadpool(storage.cube.query, q)
        except CubeQueryError as e:
            return json_response({"error": str(e)}, 400)
        except StorageError as e:
            return json_response({"error": str(e)}, 503)
        columns = [named.get(c, c) for c in result.columns]
        return json_response({"columns": columns, "rows": result.rows})

    return [Route("/api/cube", cube)]
