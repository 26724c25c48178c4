"""The alerts HTTP API (docs/alerts.md).

``GET /api/alerts`` answers ``{"alerts": [{"rule", "target", "state",
"since", "message", "healing", ...}]}``, worst first; ``GET /api/alerts/rules``
the loaded rules; ``POST /api/alerts/reload`` reads the rules directory again
(400 naming file and line on a bad file, the previous rules staying);
``GET /api/alerts/check?rule=`` evaluates one rule without acting;
``GET /api/alerts/history?from=&until=&rule=``; ``GET /api/alerts/report?since=30d``;
``GET|POST /api/alerts/silences``, ``DELETE /api/alerts/silences/{id}``;
``POST /api/alerts/ack`` with ``{"rule", "target", "reason"}``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vigil.alert.rules import RuleFileError, parse_duration
from vigil.alert.stage import AlertStage
from vigil.query.errors import RenderError
from vigil.query.timeparse import parse_time
from vigil.store.interface import StorageError
from vigil.web.jsonio import error_response, json_body, json_response


def alert_routes(stage: AlertStage, clock: Callable[[], float] = time.time) -> list[BaseRoute]:
    """The routes of the alerts API over a node's alert stage."""

    def one(request: Request, key: str, default: str = "") -> str:
        return request.query_params.get(key, default)

    async def alerts(request: Request) -> Response:
        return json_response({"alerts": stage.current()})

    async def rules(request: Request) -> Response:
        docs = [
            {k: v for k, v in dataclasses.asdict(r).items() if k != "spec"} | {"spec": r.spec}
            for r in stage.ruleset.rules
        ]
        return json_response({"rules": docs, "files": list(stage.ruleset.files)})

    async def reload(request: Request) -> Response:
        try:
            ruleset = await run_in_threadpool(stage.reload)
        except RuleFileError as e:
            return json_response({"error": str(e), "file": str(e.path), "line": e.line}, 400)
        return json_response({"rules": len(ruleset.rules), "files": list(ruleset.files)})

    async def check(request: Request) -> Response:
        name = one(request, "rule")
        try:
            return json_response(await stage.check(name))
        except KeyError:
            return error_response(404, f"no alert rule named {name!r}; GET /api/alerts/rules")

    async def history(request: Request) -> Response:
        now = int(clock())
        try:
            start = parse_time(one(request, "from", "-24h"), now)
            end = parse_time(one(request, "until", "now"), now) + 1
        except (RenderError, ValueError) as e:
            return error_response(400, f"from/until: {e}")
        rule = one(request, "rule") or None
        try:
            records = await run_in_threadpool(stage.history.query, start, end, rule)
        except StorageError as e:
            return error_response(503, str(e))
        return json_response({"history": records})

    async def report(request: Request) -> Response:
        try:
            since = clock() - abs(parse_duration(one(request, "since", "30d")))
        except ValueError as e:
            return error_response(400, f"since: {e}")
        try:
            return json_response(await run_in_threadpool(stage.report, since))
        except StorageError as e:
            return error_response(503, str(e))

    async def silences(request: Request) -> Response:
        if request.method == "GET":
            return json_response(
                {"silences": [s.as_json() for s in stage.silences.active(clock())]}
            )
        try:
            doc = await json_body(request)
            matchers = doc.get("matchers")
            if not isinstance(matchers, dict) or not matchers:
                raise ValueError(
                    '"matchers" must be an object of label: glob, e.g. {"rule": "api-*"}'
                )
            if "until" in doc:
                until = float(doc["until"])
            else:
                until = clock() + abs(parse_duration(str(doc.get("duration", ""))))
            silence = stage.add_silence(
                {str(k): str(v) for k, v in matchers.items()}, until, str(doc.get("reason", ""))
            )
        except ValueError as e:
            return error_response(400, str(e))
        return json_response(silence, 201)

    async def unsilence(request: Request) -> Response:
        id = request.path_params["id"]
        try:
            stage.remove_silence(id)
        except KeyError:
            return error_response(404, f"no active silence {id!r}")
        return json_response({"ok": True})

    async def ack(request: Request) -> Response:
        try:
            doc = await json_body(request)
            rule, target = str(doc.get("rule", "")), str(doc.get("target", ""))
            reason = str(doc.get("reason", "")).strip()
            if not reason:
                raise ValueError('say why: "reason" is required')
        except ValueError as e:
            return error_response(400, str(e))
        try:
            stage.acknowledge(rule, target, reason)
        except KeyError:
            return error_response(404, f"no alert {rule!r} / {target!r}; GET /api/alerts")
        return json_response({"ok": True})

    return [
        Route("/api/alerts", alerts),
        Route("/api/alerts/rules", rules),
        Route("/api/alerts/reload", reload, methods=["POST"]),
        Route("/api/alerts/check", check),
        Route("/api/alerts/history", history),
        Route("/api/alerts/report", report),
        Route("/api/alerts/silences", silences, methods=["GET", "POST"]),
        Route("/api/alerts/silences/{id}", unsilence, methods=["DELETE"]),
        Route("/api/alerts/ack", ack, methods=["POST"]),
    ]
