"""The one JSON error envelope: every error response, whatever raised it, has this shape."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from alex.store.base import StoreUnavailable

log = logging.getLogger(__name__)
STORE_RETRY_AFTER_S = 5

# Stable machine words for the HTTP errors werkzeug raises on its own.
_HTTP_CODES = {
    400: ("bad_request", "The request could not be understood."),
    404: ("not_found", "No such resource; check the URL."),
    405: ("method_not_allowed", "This method is not allowed on this URL."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as JSON with Content-Type: application/json."),
    429: ("rate_limited", "Too many requests; retry later."),
    431: ("headers_too_large", "The request headers are too large."),
}


class AlexError(Exception):
    """Root of the errors alex raises; each maps to one HTTP status and a stable code."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BadRequest(AlexError):
    status, code = 400, "bad_request"


class Forbidden(AlexError):
    status, code = 403, "forbidden"


class NotFound(AlexError):
    status, code = 404, "not_found"


class Conflict(AlexError):
    status, code = 409, "conflict"


class SessionBusy(Conflict):
    code = "session_busy"


class TaskFinished(Conflict):
    code = "task_finished"


class SessionClosed(Conflict):
    code = "session_closed"


class UnsupportedMediaType(AlexError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(AlexError):
    status, code = 422, "validation_failed"


class TooManyRequests(AlexError):
    status, code = 429, "rate_limited"


class Overloaded(AlexError):
    status, code = 503, "overloaded"


class LLMNotConfigured(AlexError):
    status, code = 503, "llm_not_configured"


def envelope(status: int, code: str, message: str, details: dict | None = None):
    """Build the JSON error response `{"error": {code, status, message, details?}}`."""
    body = {"code": code, "status": status, "message": message}
    if details:
        body["details"] = details
    response = jsonify(error=body)
    response.status_code = status
    return response


def register_errorhandlers(app: Flask) -> None:
    """Turn AlexError, marshmallow ValidationError, HTTPException and any other exception into the envelope."""

    @app.errorhandler(AlexError)
    def handle_alex_error(error: AlexError):
        response = envelope(error.status, error.code, error.message, error.details)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(StoreUnavailable)
    def handle_store_unavailable(error: StoreUnavailable):
        log.warning("store unavailable: %s", error)
        response = envelope(503, "store_unavailable", "The server cannot save data right now; retry in a few seconds.",
                            {"reason": str(error)})
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
        return response

    @app.errorhandler(ValidationError)
    def handle_validation_error(error: ValidationError):
        details = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        return envelope(422, "validation_failed", "The request has invalid fields; see details.", details)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        status = error.code or 500
        code, message = _HTTP_CODES.get(status, (f"http_{status}", error.description or "HTTP error."))
        if status == 413 and current_app.config.get("MAX_CONTENT_LENGTH"):
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message = f"The request body is over the limit of {limit:,} bytes (ALEX_MAX_BODY_BYTES); send less."
        response = envelope(status, code, message)
        allowed = getattr(error, "valid_methods", None)  # only on 405 MethodNotAllowed
        if allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        log.exception("unhandled error")
        return envelope(500, "internal_error", "Something went wrong on our side; the error was logged.")
