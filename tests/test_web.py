"""The web console's files: served at / and /console/ with a strict CSP, all from this server, without a key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parent.parent / "alex" / "web" / "static"
KEY = "web-test-key-0123456789"


def page_files(client) -> list[str]:
    """Every file the page loads: what index.html names, and what its modules import."""
    with client.get("/") as response:
        html = response.get_data(as_text=True)
    names = re.findall(r'(?:src|href)="([^"]+)"', html)
    for module in STATIC.glob("*.js"):
        names += [f"/console/{name}" for name in re.findall(r'from "\./([\w.]+)"', module.read_text())]
    return sorted(set(names))


def test_the_page_is_html_with_a_strict_csp(client):
    with client.get("/") as response:
        assert response.status_code == 200 and response.mimetype == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert '<script type="module" src="/console/console.js"></script>' in response.get_data(as_text=True)


def test_every_file_of_the_page_comes_from_this_server(client):
    files = page_files(client)
    assert "/console/stream.js" in files and "/console/console.css" in files
    for name in files:
        assert name.startswith("/console/"), name  # nothing from another host
        with client.get(name) as response:
            assert response.status_code == 200, name
            assert response.mimetype in ("text/javascript", "text/css", "image/svg+xml"), (name, response.mimetype)


@pytest.mark.parametrize("script", sorted(path.name for path in STATIC.glob("*.js")))
def test_no_script_turns_text_into_markup(script):
    source = (STATIC / script).read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", source)


def test_with_keys_the_page_loads_without_one_and_the_api_still_needs_it(make_app, controlled_work):
    client = make_app(work=controlled_work, ALEX_API_KEYS=KEY).test_client()
    for name in ("/", "/console/console.js"):
        with client.get(name) as response:
            assert response.status_code == 200, name
    assert client.get("/api/sessions").status_code == 401
