"""The error groups HTTP API: list groups, one group with its sample, merge and split.

::

    GET  /api/errors?from=-24h&until=now&app=&host=&dc=&cluster=&buckets=30&limit=100
         -> {"groups": [{"id", "title", "count", "first_seen", "last_seen",
                         "hosts", "apps", "sparkline": [...]}, ...]}
    GET  /api/errors/{id}?from=&until=&buckets=
         -> the group, plus "sample" (latest entry with its stack),
            "fingerprints" and "events" (deploys around its first appearance); 404 if unknown
    POST /api/errors/merge        {"ids": ["<id>", ...]}     -> {"id": "<surviving id>"}
    POST /api/errors/{id}/split   {"fingerprint": "<hex>"}   -> {"id": "<id>", "fingerprint": "<hex>"}

``from``/``until`` take Graphite's formats (``-1h``, epoch seconds, ``now``);
``from`` defaults to ``-24h``. Mistakes answer 400 ``{"error": ...}`` saying
what to change; an engine failure 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.query.timeparse import parse_time
from vigil.store.interface import ErrorStorage, StorageError
from vigil.web.jsonio import json_body, json_response

FILTER_FIELDS = ("app", "host", "dc", "cluster")
DEFAULT_FROM = "-24h"


class _BadRequest(ValueError):
    """A request the API cannot take; answered 400 with its message."""


def _range(request: Request, now: float) -> tuple[int, int]:
    """``from``/``until`` of a request as epoch milliseconds (until exclusive)."""
    since = request.query_params.get("from") or DEFAULT_FROM
    until = request.query_params.get("until") or "now"
    try:
        start = parse_time(since, int(now))
        # "now" includes the current second, as in /render.
        end = parse_time(until, int(now)) + (until == "now")
    except ValueError as e:
        raise _BadRequest(f"from/until: {e}") from None
    if end <= start:
        raise _BadRequest("until must be after from")
    return start * 1000, end * 1000


def _int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer, not {text!r}") from None


def error_routes(errors: ErrorStorage, clock: Callable[[], float] = time.time) -> list[BaseRoute]:
    """The routes of the error groups API over an error store."""

    async def answer(work: Callable[[], Any]) -> Response:
        try:
            return json_response(await run_in_threadpool(work))
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        except StorageError as e:
            return json_response({"error": str(e)}, 503)

    async def list_groups(request: Request) -> Response:
        try:
            start, end = _range(request, clock())
            buckets = _int(request, "buckets", 30)
            limit = _int(request, "limit", 100)
        except _BadRequest as e:
            return json_response({"error": str(e)}, 400)
        filters = {f: v for f in FILTER_FIELDS if (v := request.query_params.get(f))}
        return await answer(
            lambda: {"groups": errors.groups(start, end, filters, buckets=buckets, limit=limit)}
        )

    async def one_group(request: Request) -> Response:
        gid = request.path_params["id"]
        try:
            start, end = _range(request, clock())
            buckets = _int(request, "buckets", 30)
            found = await run_in_threadpool(errors.group, gid, start, end, buckets)
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        except StorageError as e:
            return json_response({"error": str(e)}, 503)
        if found is None:
            return json_response({"error": f"no error group {gid}"}, 404)
        return json_response(found)

    async def merge(request: Request) -> Response:
        try:
            ids = (await json_body(request)).get("ids")
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        if not isinstance(ids, list) or len(ids) < 2 or not all(isinstance(i, str) for i in ids):
            return json_response({"error": '"ids" must be a list of at least two group ids'}, 400)
        return await answer(lambda: {"id": errors.merge(ids)})

    async def split(request: Request) -> Response:
        gid = request.path_params["id"]
        try:
            fingerprint = (await json_body(request)).get("fingerprint")
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        if not isinstance(fingerprint, str):
            return json_response({"error": '"fingerprint" must be a fingerprint id (hex)'}, 400)

        def work() -> dict[str, str]:
            errors.split(gid, fingerprint)
            return {"id": gid, "fingerprint": fingerprint}

        return await answer(work)

    return [
        Route("/api/errors", list_groups),
        Route("/api/errors/merge", merge, methods=["POST"]),
        Route("/api/errors/{id}", one_group),
        Route("/api/errors/{id}/split", split, methods=["POST"]),
    ]
