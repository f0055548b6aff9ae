"""The agent's tools: confinement, bash (environment, limits, streaming, timeout, cancel), files, search, todos."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from alex.agent.cancel import CancelToken, TaskCancelled
from alex.agent.tools import Tool, ToolContext, build_tools, openai_tool_specs, run_tool
from alex.agent.tools.answer import FINAL_ANSWER
from alex.agent.tools.coercion import coerce_value
from alex.agent.tools.output import HeadTail, LiveOutput, cap_text
from alex.agent.tools.process import SAFE_PATH, live_group_members
from alex.agent.tools.search import MAX_MATCHES
from alex.agent.tools.usage import EXAMPLES
from alex.agent.tools.validation import argument_problem
from alex.config import ALL_TOOLS
from alex.store.sqlite import SQLiteStore
from alex.workspace import workspace_dir

SESSION = "session-tools"
TOOLS = build_tools(ALL_TOOLS)


class Emitted:
    """Records live output chunks; `on_chunk` lets a test react to output while the command runs."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, str]] = []
        self.on_chunk = None

    def __call__(self, chunk: str, stream: str) -> None:
        self.chunks.append((stream, chunk))
        if self.on_chunk is not None:
            self.on_chunk(chunk)

    def text(self, stream: str) -> str:
        return "".join(chunk for name, chunk in self.chunks if name == stream)


def wait_until(condition, timeout: float = 5.0):
    """Poll `condition` until it holds or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def all_gone(*pids: int) -> bool:
    return not any(running(pid) for pid in pids) and not live_group_members(pids[0])


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.ensure_session(SESSION)
    yield store
    store.close()


@pytest.fixture
def workspace(tmp_path) -> Path:
    return workspace_dir(tmp_path / "workspaces", SESSION, create=True)


@pytest.fixture
def make_ctx(workspace, store):
    def make(**overrides) -> ToolContext:
        values = dict(session_id=SESSION, workspace=workspace, token=CancelToken(), emit_output=Emitted(),
                      store=store, bash_timeout_s=30.0, output_limit=10_000, workspace_max_bytes=1024 * 1024)
        return ToolContext(**{**values, **overrides})

    return make


@pytest.fixture
def ctx(make_ctx) -> ToolContext:
    return make_ctx()


def call(ctx: ToolContext, name: str, **arguments) -> dict:
    return run_tool(TOOLS, name, json.dumps(arguments), ctx)


# confinement

@pytest.mark.parametrize("name, arguments", [
    ("file_read", {}), ("file_write", {"content": "x"}), ("list_files", {}), ("grep", {"pattern": "x"}),
    ("file_edit", {"old_string": "x", "new_string": "y"}),
])
@pytest.mark.parametrize("path", ["../outside", "../../outside/x", "{tmp}/outside/abs.txt", "{tmp}", "sub/../../x"])
def test_paths_outside_the_workspace_are_a_tool_error(ctx, tmp_path, name, arguments, path):
    # outside paths lie under tmp_path: a broken check must not be able to touch the system's files
    result = call(ctx, name, path=path.format(tmp=tmp_path), **arguments)
    assert "outside the workspace" in result["error"]
    assert not (tmp_path / "workspaces" / "outside").exists() and not (tmp_path / "outside").exists()


@pytest.mark.parametrize("name", ["file_read", "list_files", "grep"])
def test_system_paths_are_outside_the_workspace(ctx, name):
    arguments = {"pattern": "root"} if name == "grep" else {}
    assert "outside the workspace" in call(ctx, name, path="/etc/passwd", **arguments)["error"]
    assert "outside the workspace" in call(ctx, name, path="/", **arguments)["error"]


def test_symlinks_out_of_the_workspace_are_not_followed(ctx, workspace, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (workspace / "etc").symlink_to("/etc")
    (workspace / "out").symlink_to(outside)
    (workspace / "secret-link").symlink_to(outside / "secret.txt")
    assert "outside" in call(ctx, "file_read", path="etc/passwd")["error"]
    assert "outside" in call(ctx, "file_read", path="secret-link")["error"]
    assert "outside" in call(ctx, "file_write", path="out/new.txt", content="x")["error"]
    assert "outside" in call(ctx, "file_write", path="out/deeper/new.txt", content="x")["error"]
    assert "outside" in call(ctx, "file_edit", path="out/secret.txt", old_string="secret", new_string="x")["error"]
    assert "outside" in call(ctx, "list_files", path="out")["error"]
    assert sorted(os.listdir(outside)) == ["secret.txt"] and (outside / "secret.txt").read_text() == "secret\n"
    assert call(ctx, "grep", pattern="secret")["returncode"] == 1  # grep skips symlinks
    listing = call(ctx, "list_files", recursive=True)["output"].splitlines()
    assert listing == ["etc@", "out@", "secret-link@"]


def test_paths_inside_the_workspace_work_relative_absolute_and_as_the_workspace_itself(ctx, workspace):
    assert call(ctx, "file_write", path=str(workspace / "a" / "b.txt"), content="hi\n")["error"] is None
    assert call(ctx, "file_read", path="a/../a/b.txt")["output"] == "     1\thi"
    assert call(ctx, "list_files", path=str(workspace))["output"] == "a/"
    assert call(ctx, "list_files", path=".", recursive=True)["output"] == "a/\na/b.txt"
    assert "is a directory" in call(ctx, "file_read", path=".")["error"]
    assert "is a directory" in call(ctx, "file_write", path=str(workspace), content="x")["error"]
    (workspace / "inner").symlink_to(workspace / "a")
    assert call(ctx, "file_read", path="inner/b.txt")["output"] == "     1\thi"


# bash

def test_bash_runs_in_the_workspace_and_reports_the_exit_status(ctx, workspace):
    result = call(ctx, "bash", command="pwd; echo oops >&2; exit 3")
    assert result == {"output": f"{workspace}\noops\n[exit code 3]", "returncode": 3, "error": None}


def test_bash_says_when_a_command_printed_nothing(ctx):
    # Qwen2.5-Coder 1.5B ran `python3 greet.py` (it defines a function, prints nothing), got an empty result and
    # ran it again and again: an empty answer read as no answer at all.
    assert call(ctx, "bash", command="true")["output"] == "(no output)\n[exit code 0]"
    assert call(ctx, "bash", command="printf x; exit 1")["output"] == "x\n[exit code 1]"


@pytest.mark.skipif(shutil.which("python", path=SAFE_PATH) is not None or shutil.which("python3", path=SAFE_PATH)
                    is None, reason="needs a system with python3 and no python command (Debian's)")
def test_bash_tells_the_model_python_is_python3_where_there_is_no_python(ctx):
    # Seen with Qwen2.5-Coder on llama-server: `python primes.py` -> command not found, and the model went on to
    # suggest `apt-get install python3` instead of calling python3.
    assert "`python3`" in TOOLS["bash"].description
    result = call(ctx, "bash", command="python -c 'print(1)'")
    assert result["returncode"] == 127
    assert result["output"].endswith("[there is no `python` command here: use `python3`]\n[exit code 127]")
    assert "[there is" not in call(ctx, "bash", command="python3 -c 'print(1)'")["output"]


def test_bash_environment_holds_no_server_secret(ctx, workspace, monkeypatch):
    secrets = {"OPENAI_API_KEY": "sk-very-secret", "ALEX_API_KEYS": "key-1", "REDIS_URL": "redis://:pw@h/0",
               "AWS_SECRET_ACCESS_KEY": "aws-secret"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    output = call(ctx, "bash", command="env")["output"].removesuffix("[exit code 0]")
    variables = dict(line.split("=", 1) for line in output.splitlines())
    assert set(variables) <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "_"}
    assert variables["HOME"] == str(workspace) and variables["LANG"] == "C.UTF-8"
    assert not any(value in output for value in secrets.values())


def test_bash_applies_resource_limits(make_ctx, workspace):
    ctx = make_ctx(bash_timeout_s=10.0, workspace_max_bytes=100_000)
    limits = call(ctx, "bash", command="ulimit -t; ulimit -f; ulimit -c")["output"].split()
    assert int(limits[0]) <= 10 + 6 and int(limits[1]) * 1024 <= 100_000 and limits[2] == "0"
    result = call(ctx, "bash", command="head -c 500000 /dev/zero > big")
    assert result["returncode"] != 0 and (workspace / "big").stat().st_size <= 100_000


def test_bash_timeout_kills_the_whole_group(make_ctx):
    ctx = make_ctx(bash_timeout_s=0.5)
    started = time.monotonic()
    result = call(ctx, "bash", command="sleep 600 & echo $$ $!; sleep 600", timeout_s=60)
    assert time.monotonic() - started < 5
    assert result["error"] == "timed out after 0.5 s; the command and every process it started were killed"
    assert result["returncode"] < 0
    assert wait_until(lambda: all_gone(*map(int, result["output"].split())))


def test_bash_timeout_kills_processes_that_ignore_sigterm(ctx):
    result = call(ctx, "bash", command="trap '' TERM; sleep 600 & echo $$ $!; wait", timeout_s=0.3)
    assert result["error"].startswith("timed out after 0.3 s") and result["returncode"] == -9
    assert wait_until(lambda: all_gone(*map(int, result["output"].split())))


def test_bash_cancel_kills_the_whole_group_at_once(ctx):
    pids, cancellers = [], []

    def cancel_once_started(chunk: str) -> None:
        pids.extend(map(int, chunk.split()))
        cancellers.append(threading.Thread(target=ctx.token.cancel, args=("user asked",)))
        cancellers[-1].start()

    ctx.emit_output.on_chunk = cancel_once_started
    started = time.monotonic()
    result = call(ctx, "bash", command="sleep 600 & echo $$ $!; wait")
    assert time.monotonic() - started < 5
    cancellers[0].join(5)
    assert result["error"] == "cancelled (user asked); the command was killed"
    assert wait_until(lambda: all_gone(*pids))
    with pytest.raises(TaskCancelled):
        call(ctx, "bash", command="echo never")


@pytest.mark.parametrize("command", ["sleep 600 & echo $$ $!", "sleep 600 >/dev/null 2>&1 & echo $$ $!"])
def test_bash_stops_background_processes_when_the_command_ends(ctx, command):
    result = call(ctx, "bash", command=command)
    assert result["returncode"] == 0 and result["error"] is None
    assert "left running in the background were stopped" in result["output"]
    assert wait_until(lambda: all_gone(*map(int, result["output"].split()[:2])))


def test_bash_streams_output_live(ctx, workspace):
    ctx.emit_output.on_chunk = lambda chunk: (workspace / "go").touch() if "first" in chunk else None
    # the command only goes on once the test saw its first line: streaming that is not live would time out
    result = call(ctx, "bash", timeout_s=10,
                  command="echo first; while [ ! -e go ]; do sleep 0.01; done; echo second; echo third >&2")
    assert result == {"output": "first\nsecond\nthird\n[exit code 0]", "returncode": 0, "error": None}
    assert ctx.emit_output.chunks[0] == ("stdout", "first\n")
    assert ctx.emit_output.text("stdout") == "first\nsecond\n" and ctx.emit_output.text("stderr") == "third\n"


def test_bash_coalesces_output_into_few_chunks(ctx):
    result = call(ctx, "bash", command="for i in $(seq 1 20000); do echo line $i; done")
    assert result["returncode"] == 0
    assert ctx.emit_output.text("stdout") == "".join(f"line {n}\n" for n in range(1, 20001))
    assert len(ctx.emit_output.chunks) < 100  # 20000 lines, a few dozen events at most


def test_bash_never_splits_a_utf8_character(ctx, workspace):
    ctx.emit_output.on_chunk = lambda chunk: (workspace / "go").touch()
    result = call(ctx, "bash", timeout_s=10,
                  command=r"printf 'x\xc3'; while [ ! -e go ]; do sleep 0.01; done; printf '\xa9 \xff\n'")
    assert result["output"] == "x\u00e9 \ufffd\n[exit code 0]"
    assert [chunk for _, chunk in ctx.emit_output.chunks] == ["x", "\u00e9 \ufffd\n"]


def test_bash_output_is_capped_keeping_head_and_tail(make_ctx):
    ctx = make_ctx(output_limit=1000)
    output = call(ctx, "bash", command="seq 1 100000")["output"]
    full = "".join(f"{n}\n" for n in range(1, 100001))
    assert output.startswith(full[:500]) and output.endswith(full[-500:] + "[exit code 0]")
    assert f"[... {len(full) - 1000} characters cut ...]" in output
    assert len(output) < 1120


def test_bash_rejects_a_bad_timeout_and_takes_zero_as_the_default(ctx):
    assert "timeout_s must be a positive number" in call(ctx, "bash", command="true", timeout_s=-1)["error"]
    assert call(ctx, "bash", command="echo ok", timeout_s=0) == {"output": "ok\n[exit code 0]", "returncode": 0,
                                                                 "error": None}


# output helpers

def test_head_tail_matches_cutting_the_whole_text():
    text = "".join(f"{n:05d}|" for n in range(5000))
    capped = HeadTail(777)
    for start in range(0, len(text), 13):
        capped.add(text[start:start + 13])
    assert capped.text() == cap_text(text, 777)
    assert capped.text().startswith(text[:388]) and capped.text().endswith(text[-389:])
    assert cap_text("short", 777) == "short"


def test_live_output_stops_at_its_limit_but_the_result_keeps_the_tail():
    emitted, combined = Emitted(), HeadTail(100)
    live = LiveOutput(emitted, combined, live_limit=50)
    for _ in range(10):
        live.feed("stdout", b"0123456789" * 3)
        live.flush()
    assert emitted.text("stdout").startswith("0123456789" * 5) and "live output stops here" in emitted.text("stdout")
    assert len(emitted.chunks) == 2 and combined.total == 300


# files

def test_file_read_pages_by_lines(ctx, workspace):
    (workspace / "f.txt").write_text("".join(f"line {n}\r\n" for n in range(1, 11)))
    page = call(ctx, "file_read", path="f.txt", offset=3, limit=2)["output"]
    assert page == "     3\tline 3\n     4\tline 4\n[... more lines follow; continue with offset=5]"
    assert call(ctx, "file_read", path="f.txt", offset=9)["output"] == "     9\tline 9\n    10\tline 10"
    assert "past the end" in call(ctx, "file_read", path="f.txt", offset=11)["error"]
    assert "at least 1" in call(ctx, "file_read", path="f.txt", offset=-1)["error"]
    assert call(ctx, "file_read", path="f.txt", offset=0, limit=0)["output"].startswith("     1\tline 1\n")


def test_file_read_of_a_long_file_ends_saying_how_many_lines_it_has(ctx, workspace):
    # Qwen2.5-Coder 1.5B, asked how many lines a 137-line file has, read it and answered 116: the count is said
    # where the model reads last.
    (workspace / "long.log").write_text("".join(f"entry {n}\n" for n in range(137)))
    output = call(ctx, "file_read", path="long.log")["output"]
    assert output.endswith("   137\tentry 136\n[end of long.log: 137 lines]")
    assert call(ctx, "file_read", path="long.log", offset=100, limit=10)["output"].endswith("offset=110]")


def test_file_read_edge_cases(ctx, workspace):
    (workspace / "empty").write_text("")
    (workspace / "bin").write_bytes(b"\x7fELF\0\0\1")
    (workspace / "long").write_text("x" * 5000 + "\nend\n")
    assert call(ctx, "file_read", path="empty")["output"] == "(the file is empty)"
    assert "binary" in call(ctx, "file_read", path="bin")["error"]
    assert "does not exist" in call(ctx, "file_read", path="missing")["error"]
    os.mkfifo(workspace / "fifo")
    assert "not a regular file" in call(ctx, "file_read", path="fifo")["error"]
    assert "not a regular file" in call(ctx, "file_write", path="fifo", content="x")["error"]
    lines = call(ctx, "file_read", path="long")["output"].splitlines()
    assert lines[0].endswith("[... rest of the line cut]") and len(lines[0]) < 2100 and lines[1] == "     2\tend"


def test_file_write_creates_parents_and_respects_the_workspace_cap(make_ctx, workspace):
    ctx = make_ctx(workspace_max_bytes=100)
    assert call(ctx, "file_write", path="a/b/c.txt", content="x" * 60)["output"] == \
        "Done: created a/b/c.txt (60 bytes, 1 line)."
    assert call(ctx, "file_write", path="a/b/c.txt", content="é\n" * 30)["output"] == \
        "Done: overwrote a/b/c.txt (90 bytes, 30 lines)."
    refused = call(ctx, "file_write", path="d.txt", content="y" * 20)
    assert "exceed the workspace limit of 100 bytes" in refused["error"] and not (workspace / "d.txt").exists()
    assert (workspace / "a" / "b" / "c.txt").read_text() == "é\n" * 30
    assert "not a directory" in call(ctx, "file_write", path="a/b/c.txt/d", content="")["error"].lower()


@pytest.mark.parametrize("text, replace_all, expected_error, expected_text", [
    ("a b c", False, "old_string was not found", "a b c"),
    ("a old c", False, None, "a new c"),
    ("old old", False, "old_string occurs 2 times", "old old"),
    ("old old", True, None, "new new"),
])
def test_file_edit_requires_a_unique_match_unless_replace_all(ctx, workspace, text, replace_all, expected_error,
                                                              expected_text):
    (workspace / "f.txt").write_text(text)
    result = call(ctx, "file_edit", path="f.txt", old_string="old", new_string="new", replace_all=replace_all)
    assert (result["error"] or "").startswith(expected_error or "")
    assert (result["error"] is None) == (expected_error is None)
    assert (workspace / "f.txt").read_text() == expected_text


def test_file_edit_shows_a_few_lines_around_the_first_change(ctx, workspace):
    (workspace / "g.py").write_text("".join(f"line {n}\n" for n in range(1, 21)))
    output = call(ctx, "file_edit", path="g.py", old_string="line 10\n", new_string="ten\nTEN\n")["output"]
    assert output.splitlines()[1:] == [f"{n:6}\t{text}" for n, text in
                                       [(7, "line 7"), (8, "line 8"), (9, "line 9"), (10, "ten"), (11, "TEN"),
                                        (12, "line 11"), (13, "line 12"), (14, "line 13")]]


def test_file_edit_reports_what_it_did_and_refuses_no_ops(ctx, workspace):
    (workspace / "f.txt").write_bytes(b"one\r\ntwo\r\n")
    # The lines around the change are shown: told only "Replaced 1 occurrence", a 1.5B model did not trust its
    # edit and wrote the file again, then undid the edit.
    assert call(ctx, "file_edit", path="f.txt", old_string="two", new_string="2")["output"] == \
        "Done: replaced 1 occurrence in f.txt; the file is saved and now reads, around the change:\n     1\tone\n" \
        "     2\t2"
    assert (workspace / "f.txt").read_bytes() == b"one\r\n2\r\n"
    assert "the same" in call(ctx, "file_edit", path="f.txt", old_string="2", new_string="2")["error"]
    assert "empty" in call(ctx, "file_edit", path="f.txt", old_string="", new_string="2")["error"]


def test_file_edit_refuses_to_replace_the_whole_of_a_file(ctx, workspace):
    # Qwen2.5-Coder 0.5B, asked to add farewell() to greet.py "and keep greet as it is", wrote the right file, then
    # sent file_edit with the whole file as old_string and farewell() alone as new_string: greet() was gone.
    source = "def greet(name):\n    return 'Hello, ' + name\n"
    (workspace / "greet.py").write_text(source)
    refused = call(ctx, "file_edit", path="greet.py", old_string=source.rstrip(), new_string="def farewell(): pass")
    assert refused["error"] == ("old_string is all of greet.py (2 lines): file_edit replaces a part of a file. Put "
                                "only the lines to change in old_string, or use file_write to replace the whole file.")
    assert (workspace / "greet.py").read_text() == source
    (workspace / "one.txt").write_text("PORT = 8080\n")
    assert call(ctx, "file_edit", path="one.txt", old_string="PORT = 8080", new_string="PORT = 9090")["error"] is None


# list_files and grep

def test_list_files(ctx, workspace):
    (workspace / "src" / "pkg").mkdir(parents=True)
    (workspace / "src" / "pkg" / "m.py").write_text("")
    (workspace / "README").write_text("")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("")
    (workspace / "empty").mkdir()
    assert call(ctx, "list_files")["output"] == ".git/\nREADME\nempty/\nsrc/"
    assert call(ctx, "list_files", recursive=True)["output"] == ".git/\nREADME\nempty/\nsrc/\nsrc/pkg/\nsrc/pkg/m.py"
    assert call(ctx, "list_files", path="src")["output"] == "src/pkg/"
    assert call(ctx, "list_files", path="empty")["output"] == "(empty directory)"
    assert call(ctx, "list_files", path="README") == {"output": "README", "returncode": 0, "error": None}
    assert "does not exist" in call(ctx, "list_files", path="nope")["error"]


def test_grep(ctx, workspace):
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("import os\ndef main():\n    return os.getcwd()\n")
    (workspace / "notes.md").write_text("main idea\n")
    (workspace / "blob.bin").write_bytes(b"main\0")
    assert call(ctx, "grep", pattern=r"\bmain\b")["output"] == "notes.md:1:main idea\nsrc/a.py:2:def main():"
    assert call(ctx, "grep", pattern="main", glob="*.py")["output"] == "src/a.py:2:def main():"
    assert call(ctx, "grep", pattern="os", path="src/a.py")["output"] == \
        "src/a.py:1:import os\nsrc/a.py:3:    return os.getcwd()"
    assert call(ctx, "grep", pattern="absent") == {"output": "No matches.", "returncode": 1, "error": None}
    assert "not valid RE2 syntax (missing )" in call(ctx, "grep", pattern="(")["error"]


@pytest.mark.parametrize(("pattern", "reason"), [(r"(a)\1", "invalid escape sequence: \\1"),
                                                 ("(?=a)", "invalid perl operator: (?="),
                                                 ("(?<!a)b", "invalid perl operator: (?<")])
def test_grep_names_what_re2_does_not_support(ctx, workspace, pattern, reason):
    error = call(ctx, "grep", pattern=pattern)["error"]
    assert reason in error and "no backreferences" in error and "no lookaround" in error


def test_grep_matches_utf8_text_and_anchors_per_line(ctx, workspace):
    (workspace / "u.txt").write_bytes("café au lait\r\nnaïve\n".encode() + b"\xff\xfe raw\n")
    assert call(ctx, "grep", pattern=r"^caf.\s")["output"] == "u.txt:1:café au lait"
    assert call(ctx, "grep", pattern=r"ï.e$")["output"] == "u.txt:2:naïve"
    assert call(ctx, "grep", pattern="raw")["output"] == "u.txt:3:\ufffd\ufffd raw"


def test_a_catastrophic_pattern_is_linear_on_re2(ctx, workspace):
    # (a+)+$ against "aaaa…b" takes exponential time on a backtracking engine (Python's re: hours for 40 a's)
    (workspace / "evil.txt").write_text("a" * 40 + "b\n" + ("a" * 5000 + "!\n") * 200 + "aaa\n")
    started = time.monotonic()
    outcome = call(ctx, "grep", pattern="(a+)+$")
    assert time.monotonic() - started < 2
    assert outcome["output"] == "evil.txt:202:aaa"


def test_grep_caps_the_number_of_matches(ctx, workspace):
    (workspace / "many.txt").write_text("hit\n" * (MAX_MATCHES + 50))
    lines = call(ctx, "grep", pattern="hit")["output"].splitlines()
    assert len(lines) == MAX_MATCHES + 1 and lines[-1].startswith(f"[stopped after {MAX_MATCHES} matches")


# todos

def test_todos_round_trip_through_the_store(ctx, store):
    assert call(ctx, "todo_read")["output"] == "[]"
    todos = [{"id": "1", "content": "Read the code", "status": "completed"},
             {"id": "2", "content": "Fix the bug", "status": "in_progress"}]
    assert call(ctx, "todo_write", todos=todos)["output"] == \
        "Done: saved 2 todos (0 pending, 1 in progress, 1 completed)."
    assert json.loads(call(ctx, "todo_read")["output"]) == todos
    assert store.get_session(SESSION)["todos"] == todos
    call(ctx, "todo_write", todos=[])
    assert store.get_session(SESSION)["todos"] == []


def test_a_todo_list_all_completed_says_to_answer(ctx, store):
    # Qwen2.5-Coder 1.5B had done its task and went on re-marking and extending its todos as completed, one
    # iteration after another: the tool's answer says what comes next.
    done = [{"id": "1", "content": "Count the lines", "status": "completed"},
            {"id": "2", "content": "Write count.txt", "status": "completed"}]
    assert call(ctx, "todo_write", todos=done)["output"] == (
        "Done: saved 2 todos (0 pending, 0 in progress, 2 completed). Every item is completed: if the task is "
        "done, give your final answer now.")
    assert call(ctx, "todo_write", todos=[])["output"] == \
        "Done: saved 0 todos (0 pending, 0 in progress, 0 completed)."


def test_todo_write_validates_items(ctx, store):
    bad_status = call(ctx, "todo_write", todos=[{"id": "1", "content": "x", "status": "done"}])
    assert bad_status["error"].startswith(
        'todo_write: todos[0].status must be one of "pending", "in_progress", "completed". Arguments: '
        "todo_write(todos: array of {id: string, content: string, status: pending|in_progress|completed})")
    duplicate = call(ctx, "todo_write", todos=[{"id": "1", "content": "x", "status": "pending"}] * 2)
    assert "repeated: 1" in duplicate["error"]
    assert "missing" in call(ctx, "todo_write", todos=[{"id": "1", "status": "pending"}])["error"]
    assert store.get_session(SESSION)["todos"] == []


# run_tool and the specs

@pytest.mark.parametrize("name, raw, expected", [
    ("nope", "{}", "there is no tool named 'nope'; available tools: bash, file_read"),
    ("bash", "{not json", "bash: the arguments you sent are not a complete JSON object"),
    ("bash", "[1, 2]", "bash: the arguments you sent are not a complete JSON object"),
    ("bash", '"ls"', "bash: the arguments you sent are not a complete JSON object"),
    ("bash", "{}", "bash: missing required argument(s): command"),
    ("bash", '{"command": "ls", "cwd": "/"}', "bash: unknown argument(s): cwd (allowed: command, timeout_s)"),
    ("bash", '{"command": ["ls"]}', "bash: command must be a string, not array"),
    ("bash", '{"command": "ls", "timeout_s": "5 s"}', "bash: timeout_s must be a number, not string"),
    ("file_read", '{"path": "f", "offset": 1.5}', "file_read: offset must be an integer, not number"),
    ("file_read", '{"path": "f", "limit": true}', "file_read: limit must be an integer, not boolean"),
    ("file_edit", '{"path": "f", "old_string": "a", "new_string": "b", "replace_all": "yes"}',
     "file_edit: replace_all must be true or false, not string"),
    ("todo_write", '{"todos": {}}', "todo_write: todos must be an array, not object"),
])
def test_run_tool_turns_bad_calls_into_errors(ctx, name, raw, expected):
    result = run_tool(TOOLS, name, raw, ctx)
    assert result["error"].startswith(expected) and result["returncode"] != 0


def test_run_tool_accepts_empty_arguments_and_null_optionals(ctx):
    assert run_tool(TOOLS, "todo_read", "", ctx)["error"] is None
    assert run_tool(TOOLS, "list_files", '{"path": null, "recursive": null}', ctx)["error"] is None


def test_run_tool_turns_tool_crashes_into_errors_and_raises_only_on_cancel(ctx):
    def crash(arguments, ctx):
        raise RuntimeError("boom")

    tools = {"crash": Tool("crash", "Crashes.", {"type": "object", "properties": {}, "required": [],
                                                "additionalProperties": False}, crash)}
    assert run_tool(tools, "crash", "{}", ctx)["error"] == "crash failed unexpectedly: RuntimeError: boom"
    ctx.token.cancel("stop")
    with pytest.raises(TaskCancelled):
        run_tool(tools, "crash", "{}", ctx)


def _schema_problems(schema: dict, where: str, needs_description: bool = True) -> list[str]:
    problems = [f"{where}: no description"] if needs_description and not schema.get("description") else []
    if schema["type"] == "object":
        if schema.get("additionalProperties") is not False or not isinstance(schema.get("required"), list):
            problems.append(f"{where}: needs additionalProperties false and a required list")
        problems += [f"{where}: unknown required {name}" for name in schema["required"]
                     if name not in schema["properties"]]
        for name, child in schema["properties"].items():
            problems += _schema_problems(child, f"{where}.{name}")
    if schema["type"] == "array":
        problems += _schema_problems(schema["items"], f"{where}[]", False) if "items" in schema else [
            f"{where}: no items"]
    return problems


def test_openai_tool_specs_are_valid_function_definitions():
    specs = openai_tool_specs(TOOLS)
    assert [spec["function"]["name"] for spec in specs] == list(ALL_TOOLS)
    for spec in specs:
        assert set(spec) == {"type", "function"} and spec["type"] == "function" and spec["function"]["description"]
        assert spec["function"]["parameters"]["type"] == "object"
        assert _schema_problems(spec["function"]["parameters"], spec["function"]["name"], False) == []
    assert _schema_problems({"type": "array", "description": "d"}, "bad") == ["bad: no items"]  # the check bites


def test_build_tools_keeps_the_canonical_order_and_rejects_unknown_names():
    assert list(build_tools(["todo_read", "bash", "grep"])) == ["bash", "grep", "todo_read"]
    with pytest.raises(ValueError, match="unknown tool"):
        build_tools(["bash", "rm_rf"])


def test_a_search_past_its_time_limit_stops_with_an_error(ctx, workspace, monkeypatch):
    monkeypatch.setattr("alex.agent.tools.search.CALL_LIMIT_S", 0.3)
    for number in range(2):  # seconds of searching, far past the limit
        (workspace / f"big{number}.txt").write_bytes(b"a\n" * (4 * 1024 * 1024))
    started = time.monotonic()
    outcome = call(ctx, "grep", pattern="zzz")
    assert outcome["error"] == "the search stopped after 0.3 s; narrow the path or glob"
    assert time.monotonic() - started < 0.3 + 1.5


def test_every_tool_has_an_example_its_own_schema_accepts():
    every = {**TOOLS, FINAL_ANSWER.name: FINAL_ANSWER}
    assert set(EXAMPLES) == set(every)
    assert {name: argument_problem(tool.parameters, EXAMPLES[name]) for name, tool in every.items()} == {
        name: None for name in every}


@pytest.mark.parametrize("schema, value, expected", [
    ({"type": "integer"}, "30", 30),
    ({"type": "integer"}, "2.0", 2),
    ({"type": "integer"}, 3.0, 3),
    ({"type": "integer"}, "2.5", "2.5"),  # not an integer: left for the check to refuse
    ({"type": "integer"}, 1.5, 1.5),
    ({"type": "number"}, "nan", "nan"),
    ({"type": "number"}, "1.5", 1.5),
    ({"type": "boolean"}, "True", True),
    ({"type": "boolean"}, "yes", "yes"),
    ({"type": "string"}, 7, "7"),
    ({"type": "string"}, True, True),  # a boolean is not taken for text
    ({"type": "array", "items": {"type": "string"}}, '["a", 1]', ["a", "1"]),
    ({"type": "array", "items": {"type": "string"}}, '{"a": 1}', '{"a": 1}'),
    ({"type": "string", "enum": ["pending", "completed"]}, " Completed", "completed"),
])
def test_values_are_coerced_only_where_the_intent_is_clear(schema, value, expected):
    assert coerce_value(schema, value) == expected
