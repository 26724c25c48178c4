"""The extraction rules HTTP API: list, add, remove, backfill (docs/rules.md).

``GET /api/rules`` answers ``{"rules": [...], "errors": [...]}``;
``POST /api/rules`` takes one rule as JSON and answers 201 with it, or 400
saying what is wrong; ``DELETE /api/rules/{name}``;
``POST /api/rules/{name}/backfill`` with ``{"from": "-1d", "until": "now"}``
answers 202 ``{"job": id}``; ``GET /api/rules/backfill/{job}`` is the
job's progress and ``GET /api/rules/backfill`` every job's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.cube.backfill import Backfill
from vigil.cube.rulebook import RuleBook
from vigil.query.timeparse import parse_time
from vigil.web.jsonio import json_body, json_response


def backfill_range(doc: dict[str, Any], now: float) -> tuple[int, int]:
    """``[start_ms, end_ms)`` of a backfill request; ``until`` defaults to now (included).

    >>> backfill_range({"from": "-1h"}, 7200)
    (3600000, 7201000)
    """
    start_text, until_text = doc.get("from"), doc.get("until", "now")
    if not isinstance(start_text, str) or not start_text:
        raise ValueError('add "from" (for example "-1d"): a backfill needs its time range')
    if not isinstance(until_text, str):
        raise ValueError('"until" must be a time such as "now" or "-1h"')
    start = parse_time(start_text, int(now))
    # "now" includes the current second, as in log searches.
    end = parse_time(until_text, int(now)) + (until_text.strip().lower() == "now")
    if end <= start:
        raise ValueError(f"until ({until_text}) must be after from ({start_text})")
    return start * 1000, end * 1000


def rule_routes(
    book: RuleBook, backfills: Backfill, clock: Callable[[], float] = time.time
) -> list[BaseRoute]:
    """The routes of the rules API over this node's rule book and backfill jobs."""

    async def list_rules(request: Request) -> Response:
        return json_response({"rules": book.list(), "errors": book.errors})

    async def reload_rules(request: Request) -> Response:
        await run_in_threadpool(book.reload)
        return json_response({"rules": book.list(), "errors": book.errors})

    async def add_rule(request: Request) -> Response:
        try:
            doc = await json_body(request)
            rule = await run_in_threadpool(book.add, doc)
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        return json_response(rule.to_dict(), 201)

    async def remove_rule(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            await run_in_threadpool(book.remove, name)
        except KeyError:
            return json_response({"error": f"no rule named {name!r}"}, 404)
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        return json_response({"removed": name})

    async def start_backfill(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            start_ms, end_ms = backfill_range(await json_body(request), clock())
            job = backfills.start(start_ms, end_ms, name)
        except KeyError:
            return json_response({"error": f"no rule named {name!r}"}, 404)
        except ValueError as e:
            return json_response({"error": str(e)}, 400)
        return json_response({"job": job}, 202)

    async def backfill_jobs(request: Request) -> Response:
        return json_response({"jobs": backfills.jobs()})

    async def backfill_job(request: Request) -> Response:
        job = request.path_params["job"]
        try:
            return json_response(backfills.job(job))
        except KeyError:
            return json_response({"error": f"no backfill job {job!r}"}, 404)

    return [
        Route("/api/rules", list_rules, methods=["GET"]),
        Route("/api/rules", add_rule, methods=["POST"]),
        Route("/api/rules/reload", reload_rules, methods=["POST"]),
        Route("/api/rules/backfill", backfill_jobs, methods=["GET"]),
        Route("/api/rules/backfill/{job}", backfill_job, methods=["GET"]),
        Route("/api/rules/{name}", remove_rule, methods=["DELETE"]),
        Route("/api/rules/{name}/backfill", start_backfill, methods=["POST"]),
    ]
