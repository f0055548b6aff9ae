"""The web console: one static page at `/` (HTML, JS modules, CSS shipped as package data; no build step).

Everything it loads comes from this server, and a strict Content-Security-Policy says so to the browser: no inline
script, no other host, so even a rendering bug could not run a model's `<script>`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, Response

STATIC = Path(__file__).resolve().parent / "static"
bp = Blueprint("web", __name__, static_folder=STATIC, static_url_path="/console")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
def console() -> Response:
    """The console page (its scripts and styles are under /console/)."""
    # no-cache: after a deploy the browser asks again, so the new page (and the scripts it names) shows at once
    return Response(_page(), mimetype="text/html", headers={"Cache-Control": "no-cache"})


@cache
def _page() -> bytes:
    """index.html, read once per process (a deploy starts new processes)."""
    return (STATIC / "index.html").read_bytes()


@bp.after_request
def add_page_headers(response: Response) -> Response:
    """The CSP and its companions on the page and its files."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
