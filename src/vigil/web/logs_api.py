"""The logs HTTP API: ``POST /api/logs``, ``GET /api/logs/search``, ``/api/logs/tail`` (WebSocket).

Request and response shapes are in ``docs/logs.md``; a search that cannot use
an index answers 400 with what to add, never a scan of everything.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from vigil.bus.destination import BusFull
from vigil.ingest.logstage import LogIngest
from vigil.query.logquery import (
    FILTER_FIELDS,
    LogQuery,
    LogQueryError,
    decode_cursor,
    encode_cursor,
    parse_words,
)
from vigil.query.tail import TailHub, gap_query, resumed
from vigil.query.timeparse import parse_time
from vigil.store.interface import Storage, StorageError
from vigil.web.jsonio import json_response

# Most entries sent in one live-tail message; more go in the next.
TAIL_MESSAGE_ENTRIES = 500


def _filters(params: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {f: tuple(params[f]) for f in FILTER_FIELDS if params.get(f)}


def search_query(params: dict[str, list[str]], now: float) -> LogQuery:
    """The ``LogQuery`` of search parameters; ``LogQueryError`` says what is wrong or missing."""

    def one(key: str, default: str = "") -> str:
        values = params.get(key)
        return values[0] if values else default

    if not one("from"):
        raise LogQueryError("add from= (for example from=-1h): a search must name its time range")
    try:
        start = parse_time(one("from"), int(now))
        # "now" includes the current second, as in /render.
        end = parse_time(one("until", "now"), int(now)) + (one("until", "now") == "now")
    except ValueError as e:
        raise LogQueryError(f"from/until: {e}") from None
    words, phrases = parse_words(one("q"))
    try:
        limit = int(one("limit", "100"))
        context = int(one("context", "0"))
    except ValueError:
        raise LogQueryError("limit and context must be integers") from None
    cursor = decode_cursor(one("cursor")) if one("cursor") else None
    return LogQuery(
        start * 1000,
        end * 1000,
        filters=_filters(params),
        words=words,
        phrases=phrases,
        limit=limit,
        cursor=cursor,
        context=context,
    )


def log_push_routes(ingest: LogIngest, max_body_bytes: int) -> list[BaseRoute]:
    """``POST /api/logs``: JSON lines handed to log ingest, as the event-log protocol's are."""

    async def post_logs(request: Request) -> Response:
        body = bytearray()  # grows in place: a big body comes in many small parts
        async for part in request.stream():
            body += part
            if len(body) > max_body_bytes:
                return json_response({"error": f"body larger than {max_body_bytes} bytes"}, 413)
        try:
            parsed = await ingest.accept_jsonlines(bytes(body))
        except BusFull as e:
            return json_response({"error": f"{e}; retry later"}, 503)
        rejected = [{"line": r.line, "error": r.error} for r in parsed.rejects]
        return json_response({"accepted": parsed.entries.num_rows, "rejected": rejected})

    return [Route("/api/logs", post_logs, methods=["POST"])]


def log_routes(
    storage: Storage, tail: TailHub | None, clock: Callable[[], float] = time.time
) -> list[BaseRoute]:
    """Log search over ``storage`` and the live tail of ``tail``."""

    async def search(request: Request) -> Response:
        params = urllib.parse.parse_qs(request.url.query, keep_blank_values=False)
        try:
            q = search_query(params, clock())
            page = await run_in_threadpool(storage.logs.search, q)
        except LogQueryError as e:
            return json_response({"error": str(e)}, 400)
        except StorageError as e:
            return json_response({"error": str(e)}, 503)
        return json_response({"entries": page.entries, "next_cursor": page.next_cursor})

    async def live_tail(websocket: WebSocket) -> None:
        await websocket.accept()
        if tail is None:
            await websocket.send_bytes(orjson.dumps({"error": "this node has no tail"}))
            await websocket.close()
            return
        params = urllib.parse.parse_qs(websocket.url.query)
        try:
            words, phrases = parse_words(params.get("q", [""])[0])
            resume = params.get("after", [""])[0]
            after = decode_cursor(resume) if resume not in ("", "now") else None
            sub = tail.subscribe(_filters(params), words, phrases)
        except ValueError as e:
            await websocket.send_text(orjson.dumps({"error": str(e)}).decode())
            await websocket.close()
            return
        receiver = asyncio.create_task(_until_closed(websocket))
        try:
            now_ms = int(clock() * 1000)
            if resume == "now":  # where it starts, to resume from even if nothing arrives
                start = encode_cursor(now_ms, tail.last_uid)
                await websocket.send_text(orjson.dumps({"cursor": start}).decode())
            sent_uid = 0
            if after is not None:
                stored = await run_in_threadpool(
                    storage.logs.search, gap_query(sub, after[0], now_ms)
                )
                missed, gap = resumed(stored, tail.recent(sub, after[1]), after)
                if gap is not None:
                    await websocket.send_text(orjson.dumps({"gap": gap}).decode())
                await _send_entries(websocket, missed)
                sent_uid = int(missed[-1]["uid"]) if missed else 0
            while not receiver.done():
                entries, skipped = await sub.next(timeout=1.0)
                if skipped:
                    await websocket.send_text(orjson.dumps({"skipped": skipped}).decode())
                if sent_uid:  # already sent from the resume's backlog
                    entries = [e for e in entries if int(e["uid"]) > sent_uid]
                await _send_entries(websocket, entries)
        except (WebSocketDisconnect, RuntimeError):
            pass
        except (LogQueryError, StorageError) as e:
            await websocket.send_text(orjson.dumps({"error": f"resume: {e}"}).decode())
            await websocket.close()
        finally:
            tail.unsubscribe(sub)
            receiver.cancel()

    return [
        Route("/api/logs/search", search),
        WebSocketRoute("/api/logs/tail", live_tail),
    ]


async def _send_entries(websocket: WebSocket, entries: list[dict[str, Any]]) -> None:
    """Send ``entries`` in messages of at most ``TAIL_MESSAGE_ENTRIES``, each with its cursor."""
    for i in range(0, len(entries), TAIL_MESSAGE_ENTRIES):
        chunk = entries[i : i + TAIL_MESSAGE_ENTRIES]
        last = chunk[-1]
        cursor = encode_cursor(round(last["ts"] * 1000), int(last["uid"]))
        await websocket.send_text(orjson.dumps({"entries": chunk, "cursor": cursor}).decode())


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client goes away."""
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        pass
