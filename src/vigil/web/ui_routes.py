"""The web UI's routes: one HTML page for every ``/ui/...`` address, and the bundle it loads.

The UI is a single page (``ui/`` at the top of the repository, bundled by
``make setup`` with esbuild into ``static/``, which is not committed). Every
address under ``/ui/`` answers the same page, which reads the address to show
the right view, so a copied address opens the same view. The UI reads its data
only through the HTTP APIs, never from the node directly, so whatever guards
the APIs guards the UI too.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
BUNDLE = ("main.js", "main.css")

# Scripts only from this node: even a page that let markup through would not run it.
PAGE_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:;"
        " style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none';"
        " base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vigil</title>
<link rel="stylesheet" href="/ui/static/main.css?v={version}">
<script type="module" src="/ui/static/main.js?v={version}"></script>
</head>
<body><div id="app"></div></body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigil</title></head>
<body><h1>The web UI is not built</h1>
<p>{missing} is missing. Run <code>make setup</code> (it runs <code>npm ci</code> and
<code>npm run build</code>) in the Vigil checkout, then reload.</p></body></html>
"""


def ui_page(static_dir: Path = STATIC_DIR) -> tuple[int, str]:
    """The status and HTML of the UI page, or of a page saying how to build the bundle."""
    paths = [static_dir / name for name in BUNDLE]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return 503, _MISSING.format(missing=html.escape(str(missing[0])))
    version = max(int(p.stat().st_mtime) for p in paths)
    return 200, _PAGE.format(version=version)


def ui_routes(static_dir: Path = STATIC_DIR) -> list[BaseRoute]:
    """``/ui/...`` pages and ``/ui/static/`` files."""

    async def page(request: Request) -> Response:
        status, text = ui_page(static_dir)
        return HTMLResponse(text, status_code=status, headers=PAGE_HEADERS)

    async def to_ui(request: Request) -> Response:
        return RedirectResponse("/ui/dashboards", status_code=302)

    return [
        Route("/ui", to_ui),
        Route("/ui/", to_ui),
        Mount("/ui/static", StaticFiles(directory=static_dir, check_dir=False)),
        Route("/ui/{view:path}", page),
    ]


def wants_html(request: Request) -> bool:
    """Whether the client is a browser asking for a page rather than a script asking for text."""
    return "text/html" in request.headers.get("accept", "")
