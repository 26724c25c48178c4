"""JSON in and out of the HTTP APIs: one encoder, one body reader, one error shape."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

# Largest JSON request body the small APIs (rules, alerts, errors) take.
MAX_BODY_BYTES = 64 << 10


def json_response(doc: Any, status: int = 200) -> Response:
    """``doc`` as an ``application/json`` response (orjson: numpy-free, fast)."""
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    """``{"error": message}``: every API's way of saying what was wrong."""
    return json_response({"error": message}, status)


async def json_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The JSON object of a request body, or a ``ValueError`` saying why there is none."""
    body = await request.body()
    if len(body) > max_bytes:
        raise ValueError(f"body larger than {max_bytes} bytes")
    try:
        doc = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as e:
        raise ValueError(f"body is not JSON; send a JSON object ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    return doc
