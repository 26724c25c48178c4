"""The dashboards HTTP API over a directory of dashboard files (``web.dashboard_files``).

::

    GET    /api/dashboards          -> {"dashboards": [{"name", "title", "panels"} | {"name", "error"}]}
    GET    /api/dashboards/{name}   -> {"name", "dashboard": {...}}; 404 if there is no such file
    PUT    /api/dashboards/{name}   the dashboard's JSON -> {"name", "dashboard": {...}} as saved
    DELETE /api/dashboards/{name}   -> {"deleted": true}; 404 if there was none

A file that does not parse is listed with its error (and answered 422 when
asked for), so a bad hand edit is visible instead of silently missing.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.web.dashboard_files import DashboardError, DashboardFiles, check_name, parse
from vigil.web.jsonio import error_response, json_body, json_response

MAX_BODY_BYTES = 1 << 20


def dashboard_routes(files: DashboardFiles) -> list[BaseRoute]:
    """The routes of the dashboards API over ``files``."""

    def listing() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name in files.names():
            try:
                found = files.load(name)
            except DashboardError as e:
                out.append({"name": name, "error": str(e)})
                continue
            if found is not None:
                out.append({"name": name, "title": found.title, "panels": len(found.panels)})
        return out

    async def list_view(request: Request) -> Response:
        return json_response({"dashboards": await run_in_threadpool(listing)})

    async def get_view(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            found = await run_in_threadpool(files.load, check_name(name))
        except DashboardError as e:
            return error_response(422, str(e))
        if found is None:
            return error_response(404, f"no dashboard {name!r}")
        return json_response({"name": name, "dashboard": found.to_json()})

    async def put_view(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            check_name(name)
            dashboard = parse(await json_body(request, MAX_BODY_BYTES))
        except ValueError as e:  # DashboardError included
            return error_response(400, str(e))
        await run_in_threadpool(files.save, name, dashboard)
        return json_response({"name": name, "dashboard": dashboard.to_json()})

    async def delete_view(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            deleted = await run_in_threadpool(files.delete, name)
        except DashboardError as e:
            return error_response(400, str(e))
        if not deleted:
            return error_response(404, f"no dashboard {name!r}")
        return json_response({"deleted": True})

    return [
        Route("/api/dashboards", list_view),
        Route("/api/dashboards/{name}", get_view),
        Route("/api/dashboards/{name}", put_view, methods=["PUT"]),
        Route("/api/dashboards/{name}", delete_view, methods=["DELETE"]),
    ]
