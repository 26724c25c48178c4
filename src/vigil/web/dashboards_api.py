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

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.web.dashboard_files import DashboardError, DashboardFiles, check_name, parse

MAX_BODY_BYTES = 1 << 20


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


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
        return _json({"dashboards": await run_in_threadpool(listing)})

    async def get_view(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            found = await run_in_threadpool(files.load, check_name(name))
        except DashboardError as e:
            return _json({"error": str(e)}, 422)
        if found is None:
            return _json({"error": f"no dashboard {name!r}"}, 404)
        return _json({"name": name, "dashboard": found.to_json()})

    async def put_view(request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _json({"error": f"a dashboard is at most {MAX_BODY_BYTES} bytes"}, 413)
        try:
            check_name(name)
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise DashboardError(f"the body is not JSON: {e}") from None
            dashboard = parse(doc)
        except DashboardError as e:
            return _json({"error": str(e)}, 400)
        await run_in_threadpool(files.save, name, dashboard)
        return _json({"name": name, "dashboard": dashboard.to_json()})

    async def delete_view(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            deleted = await run_in_threadpool(files.delete, name)
        except DashboardError as e:
            return _json({"error": str(e)}, 400)
        if not deleted:
            return _json({"error": f"no dashboard {name!r}"}, 404)
        return _json({"deleted": True})

    return [
        Route("/api/dashboards", list_view),
        Route("/api/dashboards/{name}", get_view),
        Route("/api/dashboards/{name}", put_view, methods=["PUT"]),
        Route("/api/dashboards/{name}", delete_view, methods=["DELETE"]),
    ]
