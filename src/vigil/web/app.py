"""The HTTP face of a node: Graphite's API, events, Prometheus metrics, status.

Routes follow graphite-web so that Grafana's Graphite data source and
existing scripts work unchanged. Query work runs in worker threads (storage
calls block); user errors answer 400 with a message saying what was wrong.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from vigil import __version__
from vigil.alert.stage import AlertStage
from vigil.cube.backfill import Backfill
from vigil.cube.rulebook import RuleBook
from vigil.ingest.logstage import LogIngest
from vigil.query import finder
from vigil.query.errors import RenderError
from vigil.query.functions import FUNCTIONS
from vigil.query.render import RenderRequest, render
from vigil.query.tail import TailHub
from vigil.query.timeparse import parse_time
from vigil.settings import QuerySettings
from vigil.store.interface import Storage, StorageError
from vigil.telemetry import Telemetry
from vigil.web.alerts_api import alert_routes
from vigil.web.cube_api import cube_routes
from vigil.web.dashboard_files import DashboardFiles
from vigil.web.dashboards_api import dashboard_routes
from vigil.web.errors_api import error_routes
from vigil.web.graphite_events import EventError, event_json, parse_event
from vigil.web.logs_api import log_push_routes, log_routes
from vigil.web.rules_api import rule_routes
from vigil.web.sources_api import source_routes
from vigil.web.ui_routes import ui_routes, wants_html

GRAPHITE_VERSION = "1.1.10"  # the graphite-web API level we answer as (Grafana reads it)


class StatusSource(Protocol):
    """Whatever can describe the node for ``/api/status``."""

    def status(self) -> dict[str, Any]:
        """Ports, stages, queues and drops."""
        ...


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _params(request: Request) -> dict[str, list[str]]:
    """Query-string and form parameters, repeated keys kept (``target`` may repeat)."""
    params = urllib.parse.parse_qs(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", "replace")
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            try:
                doc = json.loads(body or "{}")
            except ValueError as e:
                raise RenderError(f"request body is not JSON: {e}") from None
            for key, value in doc.items():
                values = value if isinstance(value, list) else [value]
                params.setdefault(key, []).extend(str(v) for v in values)
        else:
            for key, values in urllib.parse.parse_qs(body, keep_blank_values=True).items():
                params.setdefault(key, []).extend(values)
    return params


def _first(params: dict[str, list[str]], key: str, default: str = "") -> str:
    values = params.get(key)
    return values[0] if values else default


def _query_routes(
    storage: Storage, limits: QuerySettings, clock: Callable[[], float]
) -> list[BaseRoute]:
    """Graphite's render, find, tags and events APIs over ``storage``."""

    async def guarded(
        request: Request, work: Callable[[dict[str, list[str]]], Response]
    ) -> Response:
        try:
            params = await _params(request)
            return await run_in_threadpool(work, params)
        except (RenderError, EventError, ValueError) as e:
            return _error(400, str(e))
        except StorageError as e:
            return _error(503, str(e))

    async def render_view(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            req = RenderRequest.from_params(params, now=int(clock()))
            content_type, body = render(req, storage, limits)
            return Response(body, media_type=content_type)

        return await guarded(request, work)

    async def find_view(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            found = finder.find_metrics(
                storage,
                _first(params, "query"),
                _first(params, "format", "treejson"),
                wildcards=_first(params, "wildcards") in ("1", "true"),
            )
            return JSONResponse(found)

        return await guarded(request, work)

    async def expand_view(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            return JSONResponse(
                finder.expand_metrics(
                    storage,
                    params.get("query", []),
                    leaves_only=_first(params, "leavesOnly") in ("1", "true"),
                    group_by_expr=_first(params, "groupByExpr") in ("1", "true"),
                )
            )

        return await guarded(request, work)

    async def index_view(request: Request) -> Response:
        return await guarded(request, lambda p: JSONResponse(finder.metric_index(storage)))

    async def functions_view(request: Request) -> Response:
        return JSONResponse({name: spec.describe() for name, spec in sorted(FUNCTIONS.items())})

    async def tags_view(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            names = storage.tag_names(
                _first(params, "filter"), [], int(_first(params, "limit", "100"))
            )
            return JSONResponse([{"tag": n} for n in names])

        return await guarded(request, work)

    async def autocomplete_tags(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            names = storage.tag_names(
                _first(params, "tagPrefix"),
                params.get("expr", []),
                int(_first(params, "limit", "100")),
            )
            return JSONResponse(names)

        return await guarded(request, work)

    async def autocomplete_values(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            tag = _first(params, "tag")
            if not tag:
                raise RenderError("missing tag: /tags/autoComplete/values?tag=host")
            values = storage.tag_values(
                tag, _first(params, "valuePrefix"), params.get("expr", []),
                int(_first(params, "limit", "100")),
            )  # fmt: skip
            return JSONResponse(values)

        return await guarded(request, work)

    async def post_event(request: Request) -> Response:
        try:
            when, what, tags, data = parse_event(await request.body())
        except EventError as e:
            return _error(400, str(e))
        try:
            event = await run_in_threadpool(storage.write_event, when, what, tags, data)
        except StorageError as e:  # the sender may try again: nothing was stored
            return _error(503, str(e))
        return JSONResponse(event_json(event))

    async def get_events(request: Request) -> Response:
        def work(params: dict[str, list[str]]) -> Response:
            now = int(clock())
            start = parse_time(_first(params, "from", "-24h"), now)
            end = parse_time(_first(params, "until", "now"), now)
            tags = [t for v in params.get("tags", []) for t in v.replace(",", " ").split()]
            return JSONResponse([event_json(e) for e in storage.events(start, end + 1, tags)])

        return await guarded(request, work)

    return [
        Route("/render", render_view, methods=["GET", "POST"]),
        Route("/render/", render_view, methods=["GET", "POST"]),
        Route("/metrics/find", find_view, methods=["GET", "POST"]),
        Route("/metrics/find/", find_view, methods=["GET", "POST"]),
        Route("/metrics/expand", expand_view, methods=["GET", "POST"]),
        Route("/metrics/index.json", index_view),
        Route("/functions", functions_view),
        Route("/functions/", functions_view),
        Route("/tags", tags_view),
        Route("/tags/", tags_view),
        Route("/tags/autoComplete/tags", autocomplete_tags),
        Route("/tags/autoComplete/values", autocomplete_values),
        Route("/events", post_event, methods=["POST"]),
        Route("/events/", post_event, methods=["POST"]),
        Route("/events/get_data", get_events),
    ]


def create_app(
    storage: Storage | None,
    telemetry: Telemetry,
    limits: QuerySettings,
    node: StatusSource | None = None,
    clock: Callable[[], float] = time.time,
    log_ingest: LogIngest | None = None,
    tail: TailHub | None = None,
    max_body_bytes: int = 64 << 20,
    rules: tuple[RuleBook, Backfill] | None = None,
    dashboards: DashboardFiles | None = None,
    alerts: AlertStage | None = None,
    queries: bool = True,
    ui: bool = True,
) -> Starlette:
    """The ASGI application of one node, with the routes of the parts it runs.

    ``storage`` is the storage this process has open (None: none); with
    ``queries`` the read APIs answer from it. ``log_ingest`` brings the log
    push, ``rules`` the extraction rules API, ``alerts`` the alerts API,
    ``dashboards`` the dashboards API, ``ui`` the web UI at ``/ui/`` (``/``
    sends browsers there). ``/metrics``, ``/api/status`` and ``/version``
    are always there.
    """

    async def version_view(request: Request) -> Response:
        return PlainTextResponse(GRAPHITE_VERSION)

    async def prometheus_view(request: Request) -> Response:
        return Response(telemetry.prometheus_text(), media_type="text/plain; version=0.0.4")

    async def status_view(request: Request) -> Response:
        status = node.status() if node is not None else {}
        if storage is None:
            return JSONResponse({"version": __version__, **status})
        usage: dict[str, Any]
        try:
            usage = await run_in_threadpool(storage.usage)
        except StorageError as e:  # the bus's figures matter most while storage is away
            usage = {"error": str(e)}
        return JSONResponse({"version": __version__, **status, "storage": usage})

    async def compact_view(request: Request) -> Response:
        assert storage is not None  # routed only with storage
        started = time.monotonic()
        tables = await run_in_threadpool(storage.compact)
        usage = await run_in_threadpool(storage.usage)
        seconds = round(time.monotonic() - started, 3)
        return JSONResponse({"compacted": tables, "seconds": seconds, "storage": usage})

    async def home(request: Request) -> Response:
        if ui and wants_html(request):
            return RedirectResponse("/ui/dashboards", status_code=302)
        return PlainTextResponse(
            f"Vigil {__version__}: web UI at /ui/; Graphite API at /render, /metrics/find, /events;"
            " logs at /api/logs and /api/logs/search, live tail at /api/logs/tail;"
            " Prometheus metrics at /metrics; node status at /api/status\n"
        )

    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/version", version_view),
        Route("/version/", version_view),
        Route("/metrics", prometheus_view),
        Route("/api/status", status_view),
    ]
    if storage is not None:
        routes.append(Route("/api/compact", compact_view, methods=["POST"]))
    if log_ingest is not None:
        routes += log_push_routes(log_ingest, max_body_bytes)
    if storage is not None and queries:
        routes += _query_routes(storage, limits, clock)
        routes += log_routes(storage, tail, clock)
        routes += cube_routes(storage, clock)
        routes += error_routes(storage.errors, clock)
        routes += source_routes(storage.logs, clock)
    if alerts is not None:
        routes += alert_routes(alerts, clock)
    if rules is not None:
        routes += rule_routes(*rules, clock)
    if dashboards is not None:
        routes += dashboard_routes(dashboards)
    if ui:
        routes += ui_routes()
    return Starlette(routes=routes)
