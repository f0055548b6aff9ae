"""Small response builders shared by the blueprints."""

from __future__ import annotations

from flask import Response


def no_content() -> Response:
    """204 with no body and no Content-Type (Flask would label the empty body text/html)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response
