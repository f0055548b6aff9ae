"""alex as a user installs it: a wheel built from the checkout, installed into a fresh virtual environment,
and the server started from it with `alex serve` — from another directory, without activating the venv; the web
console's files come with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.server import ROOT, free_port

pytestmark = pytest.mark.e2e


def run(*command: str, cwd=None) -> None:
    finished = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, f"{' '.join(command)} failed:\n{finished.stdout}\n{finished.stderr}"


def test_the_wheel_installs_into_a_fresh_venv_and_alex_serve_runs_from_it(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT))
    wheel = next((tmp_path / "dist").glob("alex-*.whl"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt"), str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALEX_", "OPENAI_", "VIRTUAL_ENV"))}
    env.update({"PATH": "/usr/bin:/bin", "ALEX_ENV_FILE": "none", "ALEX_DATA_DIR": str(tmp_path / "data")})
    server = subprocess.Popen([str(venv / "bin" / "alex"), "serve", "--port", str(port)], cwd=elsewhere, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the installed server never answered /health"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)  # bounded poll while gunicorn starts
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as response:
            assert json.loads(response.read())["openapi"].startswith("3.")
        for page in ("/", "/console/console.js", "/console/stream.js", "/console/console.css"):  # package data
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5) as response:
                assert response.status == 200 and response.read(), page
        assert (tmp_path / "data" / "alex.sqlite3").exists()  # the embedded store, where the setting says
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        finally:
            if server.stdout:
                server.stdout.close()
