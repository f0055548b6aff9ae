"""`GET /api/openapi.json`: the OpenAPI 3 document of this server, open like /health."""

from __future__ import annotations

from flask import Blueprint, current_app

from alex.openapi_spec import build_spec

bp = Blueprint("openapi", __name__)
_CACHE_KEY = "alex.openapi"


@bp.get("/api/openapi.json")
def openapi_document():
    """The document, built on first use from the app's URL map and schemas (both are fixed by then)."""
    document = current_app.extensions.get(_CACHE_KEY)
    if document is None:
        document = current_app.extensions[_CACHE_KEY] = build_spec(current_app)
    return document
