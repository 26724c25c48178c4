"""The sources HTTP API: the inventory of hosts and applications that report.

::

    GET /api/sources?from=-1h&until=now
        -> {"from": s, "until": s,
            "sources": [{"host", "app", "last_seen", "last_heartbeat",
                         "entries": {"line": n, "heartbeat": n, ...},
                         "names": {"event": ["deploy", ...], ...}}]}

A source is a (host, app) pair with log entries in the range; the range
(default the last hour, at most ``MAX_RANGE_SECONDS``) is what keeps the
query on the index. Mistakes answer 400 with what to change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.query.timeparse import parse_time
from vigil.store.interface import LogStorage, StorageError
from vigil.web.jsonio import error_response, json_response

DEFAULT_FROM = "-1h"
MAX_RANGE_SECONDS = 7 * 86400


def sources_range(params: dict[str, str], now: int) -> tuple[int, int]:
    """``from``/``until`` as epoch seconds (until exclusive); ``ValueError`` says what is wrong."""
    since = params.get("from") or DEFAULT_FROM
    until = params.get("until") or "now"
    try:
        start = parse_time(since, now)
        end = parse_time(until, now) + (until == "now")
    except ValueError as e:
        raise ValueError(f"from/until: {e}") from None
    if end <= start:
        raise ValueError("until must be after from")
    if end - start > MAX_RANGE_SECONDS:
        raise ValueError(f"the range is at most {MAX_RANGE_SECONDS // 86400} days: narrow from")
    return start, end


def source_routes(logs: LogStorage, clock: Callable[[], float] = time.time) -> list[BaseRoute]:
    """The route of the sources API over a log store."""

    async def sources(request: Request) -> Response:
        try:
            start, end = sources_range(dict(request.query_params), int(clock()))
            found = await run_in_threadpool(logs.sources, start * 1000, end * 1000)
        except ValueError as e:  # LogQueryError included: too many entries in the range
            return error_response(400, str(e))
        except StorageError as e:
            return error_response(503, str(e))
        return json_response({"from": start, "until": end, "sources": found})

    return [Route("/api/sources", sources)]
