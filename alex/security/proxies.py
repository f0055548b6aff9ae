"""Trusted proxies: believe X-Forwarded-* (werkzeug's ProxyFix) and RFC 7239 `Forwarded` only from `hops` proxies."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from alex.config import Config

# One `name=value` pair of a Forwarded element; a value is a token or a quoted string (RFC 7239 §4).
_PAIR = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;,"]*)\s*([;,]|\Z)')
_HOST = re.compile(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
_PROTO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def register_proxy_fix(app: Flask, config: Config) -> None:
    """With ALEX_TRUSTED_PROXY_HOPS > 0, take client address, scheme and host from the proxies' headers.

    With 0 (the default) nothing is wrapped: a client talking to us directly cannot claim another host or
    scheme with X-Forwarded-* or Forwarded.
    """
    hops = config.trusted_proxy_hops
    if hops > 0:
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        app.wsgi_app = ForwardedFix(proxied, hops)  # type: ignore[method-assign]


class ForwardedFix:
    """WSGI middleware: apply the `Forwarded` element added by the outermost trusted proxy (the `hops`-th last).

    A field is taken from `Forwarded` only when the proxies sent no X-Forwarded-* header for it; those are
    ProxyFix's. So a proxy that sets X-Forwarded-* (most do) cannot be overruled by a Forwarded header a
    client made up; a proxy that only sets Forwarded must drop X-Forwarded-* headers coming from clients.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], hops: int):
        self.wsgi_app = wsgi_app
        self.hops = hops

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        elements = parse_forwarded(environ.get("HTTP_FORWARDED", ""))
        if len(elements) >= self.hops:
            _apply(environ, elements[-self.hops])
        return self.wsgi_app(environ, start_response)


def _apply(environ: dict[str, Any], element: dict[str, str]) -> None:
    """Copy the element's for/proto/host into the environ where no X-Forwarded-* header speaks for them."""
    address = _forwarded_address(element.get("for", ""))
    if address and "HTTP_X_FORWARDED_FOR" not in environ:
        environ["REMOTE_ADDR"] = address
    proto = element.get("proto", "")
    if _PROTO.fullmatch(proto) and "HTTP_X_FORWARDED_PROTO" not in environ:
        environ["wsgi.url_scheme"] = proto.lower()
    host = element.get("host", "")
    if _HOST.fullmatch(host) and "HTTP_X_FORWARDED_HOST" not in environ:
        environ["HTTP_HOST"] = host


def parse_forwarded(header: str) -> list[dict[str, str]]:
    """The elements of a Forwarded header as {name: value} dicts in order; [] when the header is malformed."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    position = 0
    while position < len(header):
        match = _PAIR.match(header, position)
        if match is None or match.end() == position:
            return []  # not RFC 7239: believe none of it rather than part of it
        name, value, separator = match.groups()
        current[name.lower()] = _unquote(value)
        position = match.end()
        if separator != ";":
            elements.append(current)
            current = {}
    return elements


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _forwarded_address(node: str) -> str:
    """The IP address of a Forwarded `for` node (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`); "" for unknown or hidden."""
    if node.startswith("["):
        node = node[1:].partition("]")[0]
    elif node.count(":") == 1:
        node = node.partition(":")[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return ""
