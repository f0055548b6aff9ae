"""The layers stay apart: the store, streaming and agent packages import without Flask (a CLI, a worker or the
Redis backend can use them without the web app), and the agent raises no HTTP errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["alex", "alex.store", "alex.streaming.stream", "alex.streaming.publisher",
                                    "alex.agent.runner", "alex.agent.work", "alex.agent.loop"])
def test_imports_without_flask(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_the_agent_package_does_not_use_the_http_errors():
    for path in (REPO / "alex" / "agent").rglob("*.py"):
        assert "alex.errors" not in path.read_text(), path


def test_the_remote_client_imports_neither_flask_nor_the_agent():
    """`alex run` against a remote server loads the HTTP client only."""
    code = ("import sys, alex.client, alex.cli_remote; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug') or m == 'alex.agent'))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
