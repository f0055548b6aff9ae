"""Helpers shared by the API tests: the app's services and the error-envelope check."""

from __future__ import annotations

# What makes a GET an opening WebSocket handshake (werkzeug routes only those to /api/ws).
WS_HANDSHAKE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def services(app):
    """The app's process services (store, publisher, broadcaster, runner, ...)."""
    return app.extensions["alex"]


def assert_envelope(response, status: int, code: str) -> dict:
    """The response is exactly the error envelope with this status and code; returns the error object."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) <= {"code", "status", "message", "details"}
    assert (error["status"], error["code"]) == (status, code)
    assert isinstance(error["message"], str) and error["message"].strip()
    assert "Traceback" not in text and "/alex/" not in text and ".py" not in text
    return error
