"""File tools refuse hard-linked files: a hard link made by bash may name a file outside the workspace."""

from __future__ import annotations

import json
import os

import pytest

from alex.agent.tools import build_tools, run_tool
from alex.config import ALL_TOOLS
from tests.sandbox_support import tool_context

TOOLS = build_tools(ALL_TOOLS)


@pytest.fixture
def linked(tmp_path):
    """(ctx, outside file) with `workspace/link` a hard link to a file outside the workspace."""
    outside = tmp_path / "server-secret.txt"
    outside.write_text("canary-secret line\n")
    ctx = tool_context(tmp_path / "ws")
    os.link(outside, ctx.workspace / "link")
    return ctx, outside


@pytest.mark.parametrize("name, arguments", [
    ("file_read", {}),
    ("file_write", {"content": "overwritten\n"}),
    ("file_edit", {"old_string": "canary", "new_string": "changed"}),
])
def test_file_tools_refuse_a_hard_linked_file_and_leave_it_alone(linked, name, arguments):
    ctx, outside = linked
    result = run_tool(TOOLS, name, json.dumps({"path": "link", **arguments}), ctx)
    assert result["error"] == "'link' has other hard links (it may be a file outside the workspace); refused"
    assert "canary" not in result["output"]
    assert outside.read_text() == "canary-secret line\n"


def test_a_file_whose_last_other_link_is_gone_is_served_again(linked):
    ctx, outside = linked
    outside.unlink()
    result = run_tool(TOOLS, "file_edit", json.dumps({"path": "link", "old_string": "canary", "new_string": "c"}), ctx)
    assert result["error"] is None
    assert run_tool(TOOLS, "file_read", json.dumps({"path": "link"}), ctx)["output"] == "     1\tc-secret line"


def test_writing_a_new_file_and_overwriting_a_plain_one_still_work(tmp_path):
    ctx = tool_context(tmp_path / "ws")
    for content in ("one\n", "two\n"):
        assert run_tool(TOOLS, "file_write", json.dumps({"path": "a/b.txt", "content": content}), ctx)["error"] is None
    assert (ctx.workspace / "a" / "b.txt").read_text() == "two\n"
