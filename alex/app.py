"""The Flask app factory: settings, request ids, security, services, blueprints, error handlers."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

from alex.agent.runner import Work
from alex.config import Config
from alex.errors import register_errorhandlers
from alex.logs import configure_logging
from alex.observability.web import register_metrics, register_request_log
from alex.security import register_auth, register_cors, register_proxy_fix
from alex.security.limits import register_limits
from alex.services import build_services

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def create_app(config: Config | None = None, *, work: Work | None = None) -> Flask:
    """Build the WSGI app: configuration, request ids, security, services, blueprints, error handlers."""
    config = config or Config.from_env()
    app = Flask(__name__)
    register_settings(app, config)
    register_request_id(app)
    register_request_log(app)  # right after the id: a request refused by security is logged with it
    # Security before services start (an open production server is refused first); its hooks run in this
    # order: proxies rewrite the environ, CORS answers preflights, then auth sets g.owner for what follows.
    register_proxy_fix(app, config)
    register_cors(app, config)
    register_auth(app, config)
    register_extensions(app, config, work)
    register_metrics(app)
    register_blueprints(app)
    register_limits(app, config)  # after the blueprints: it wraps the views marked @rate_limited
    register_errorhandlers(app)
    return app


def register_settings(app: Flask, config: Config) -> None:
    """Flask settings derived from Config, and logging."""
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    configure_logging(config)


def register_extensions(app: Flask, config: Config, work: Work | None) -> None:
    """Create the process's services and keep them on the app."""
    app.extensions["alex"] = build_services(config, work)


def register_request_id(app: Flask) -> None:
    """Give every request an id (the client's X-Request-ID when well-formed) and echo it on the response."""

    @app.before_request
    def assign_request_id() -> None:
        offered = request.headers.get("X-Request-ID", "")
        g.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        return response


def register_blueprints(app: Flask) -> None:
    """Mount the API blueprints and the web console (streams answer `Connection: close`: see CloseAfterStream)."""
    from alex import web
    from alex.api import openapi, ops, sessions, stream, tasks, ws

    for module in (ops, tasks, sessions, stream, ws, openapi, web):
        app.register_blueprint(module.bp)
    app.wsgi_app = stream.CloseAfterStream(app.wsgi_app)  # type: ignore[method-assign]
