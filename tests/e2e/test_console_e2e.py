"""The web console in a real browser (Debian's chromium, headless) against real gunicorn and the fake OpenAI: a task
shown live, a reload that replays it, cancel, safe rendering of hostile answers, and the stream surviving a server
restart, a proxy's 502 and an expired stream token (401) without showing any event twice."""

from __future__ import annotations

import os
import signal
import threading
from urllib.parse import unquote

import pytest
from selenium.webdriver.common.by import By

from tests.agent_support import agent_settings, analysis
from tests.e2e.browser import ConsolePage, start_chromium
from tests.e2e.tcp_relay import TCPRelay
from tests.e2e.test_cli_e2e import ANSWER, TASK, gated_script, seed_script
from tests.e2e.test_streams_e2e import logged_events
from tests.fakes.openai_server import error, text, tool_calls

pytestmark = pytest.mark.e2e

KEY = "console-key-0123456789"
REFUSED = "the stream was refused or ended"  # the page's words when EventSource gave up and it reopens the stream


@pytest.fixture
def browser(tmp_path, request, monkeypatch):
    """The console's page object in a fresh chromium; a screenshot of the end state is kept in test-artifacts/,
    and the test fails if a script of the page threw."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver or a browser
    driver = start_chromium(tmp_path / "profile")
    page = ConsolePage(driver)
    yield page
    try:
        page.screenshot(request.node.name)
        errors = page.script_errors()
    finally:
        driver.quit()
    assert errors == [], errors


@pytest.fixture
def relay():
    """A TCP relay the page connects through (the test can cut it, answer 502 on it, or point it elsewhere)."""
    relays: list[TCPRelay] = []
    yield lambda port: relays.append(TCPRelay(port)) or relays[-1]
    for each in relays:
        each.close()


def shown_session(page: ConsolePage) -> str:
    """The session the page shows (its address ends with #session=<id>)."""
    return unquote(page.driver.current_url.split("#session=", 1)[1])


def logged_ids(server, session_id: str, headers: dict[str, str] | None = None) -> list[str]:
    """The ids of the session's events, from the log."""
    return [event_id for event_id, _, _ in logged_events(server, session_id, headers=headers)]


def run_gated_task(page: ConsolePage, fake_openai) -> threading.Event:
    """Run a task whose answer waits for the returned gate; returns once the page shows its second iteration."""
    gate = threading.Event()
    fake_openai.script(*gated_script(gate))
    page.run_task(TASK)
    page.wait(lambda: "Iteration 2 of 20" in page.text("#timeline"), message="the second iteration")
    return gate


def assert_resumed(page: ConsolePage, server, headers: dict[str, str] | None = None) -> None:
    """The page is live again and shows the task to its end: every logged event once, in order."""
    page.wait_for_event("task_complete", timeout=60)
    page.wait(lambda: page.state()[0] == "live", message="the live state")
    assert [event_id for event_id, _ in page.events()] == logged_ids(server, shown_session(page), headers)
    assert page.text("#timeline .answer .markdown") == ANSWER


def test_a_task_shows_live_and_a_reload_replays_it(start_server, fake_openai, browser):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(*seed_script())
    browser.open(server.url + "/")
    browser.wait(lambda: browser.find("#no-sessions").is_displayed(), message="the first-time hint")
    browser.run_task(TASK)
    browser.wait_for_event("task_complete")
    timeline = browser.text("#timeline")
    for shown in ("Task: Create hello", "Goal: hello.py prints hello", "Iteration 1 of 20", "I'll write the file.",
                  "file_write", "print('hello')", "Now run it.", "python3 hello.py", "Completed: 3 iteration(s)"):
        assert shown in timeline
    assert browser.texts("#timeline pre.output")[-1] == "hello\n"  # bash's live output
    assert browser.text("#timeline .answer .markdown") == ANSWER
    # the last iteration's streamed text is the answer: it folds away once the answer is shown
    assert [text.is_displayed() for text in browser.all("#timeline .think-text")] == [True, True, False]
    assert browser.state()[0] == "live"
    session_id = shown_session(browser)
    assert browser.find(f'#session-list [data-session-id="{session_id}"]').get_attribute("aria-current") == "true"
    shown = browser.events()
    assert [event_id for event_id, _ in shown] == logged_ids(server, session_id)  # every event once, in order
    browser.screenshot("console")
    browser.driver.refresh()
    browser.wait(lambda: browser.events() == shown, message="the history replayed after a reload")
    assert browser.text("#timeline .answer .markdown") == ANSWER
    fake_openai.assert_done()


def test_cancel_stops_a_looping_task(start_server, fake_openai, browser):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(analysis("Loop", "runs until stopped"),
                       tool_calls(("bash", {"command": "while true; do echo tick; sleep 0.1; done"})))
    browser.open(server.url + "/")
    browser.run_task("loop forever")
    browser.wait(lambda: "tick\ntick" in browser.text("#timeline pre.output"), message="the loop's live output")
    browser.find("#cancel").click()
    browser.wait_for_event("task_cancelled")
    assert not browser.find("#cancel").is_enabled()
    status, _, listed = server.request("GET", f"/api/tasks?session_id={shown_session(browser)}")
    assert status == 200 and [task["status"] for task in listed["tasks"]] == ["cancelled"]


HOSTILE = ('Done. <img src=x onerror="document.title=\'pwned\'"> <script>document.title="pwned"</script>\n\n'
           "**bold** and [a link](javascript:alert(1)) and [docs](https://example.com/x)\n\n"
           "## Steps\n- one `<b>`\n- two\n\n```\n<p>kept</p>\n```")


def test_model_html_is_shown_as_text_and_the_page_fits_a_phone(start_server, fake_openai, browser):
    server = start_server(**agent_settings(fake_openai))
    todos = [{"id": "1", "content": "<u>plan</u>", "status": "completed"},
             {"id": "2", "content": "shout", "status": "in_progress"}]
    fake_openai.script(analysis("<b>Shout</b>"), tool_calls(("bash", {"command": "echo '<i>out</i>'"}),
                                                            ("todo_write", {"todos": todos})), text(HOSTILE))
    browser.driver.set_window_size(390, 844)
    browser.open(server.url + "/")
    browser.run_task("say something hostile")
    browser.wait_for_event("task_complete")
    answer = browser.find("#timeline .answer .markdown")
    assert '<img src=x onerror="document.title=\'pwned\'"> <script>document.title="pwned"</script>' in \
        answer.get_attribute("textContent")
    assert answer.find_elements(By.CSS_SELECTOR, "img, script") == []
    assert [node.text for node in answer.find_elements(By.CSS_SELECTOR, "strong")] == ["bold"]
    links = answer.find_elements(By.CSS_SELECTOR, "a")
    assert [link.get_attribute("href") for link in links] == ["https://example.com/x"]  # javascript: stays text
    assert [node.text for node in answer.find_elements(By.CSS_SELECTOR, "h4, li, li code, pre code")] == \
        ["Steps", "one <b>", "<b>", "two", "<p>kept</p>"]
    assert "Task: <b>Shout</b>" in browser.text("#timeline")
    assert browser.text("#timeline pre.output") == "<i>out</i>\n"
    assert browser.all("#timeline b, #timeline i, #timeline img") == []
    browser.wait(lambda: browser.texts("#todo-list li") == ["completed <u>plan</u>", "in progress shout"],
                 message="the session's todos, as text")
    assert browser.driver.title == "alex console"
    assert browser.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_a_failed_task_is_shown_plainly(start_server, fake_openai, browser):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(analysis(), error(400, "The model 'gpt-nope' does not exist."))
    browser.open(server.url + "/")
    browser.run_task("use a model that does not exist")
    browser.wait_for_event("error")
    assert browser.texts("#timeline .error.terminal") == ["Task failed (llm)The model 'gpt-nope' does not exist."]
    assert not browser.find("#cancel").is_enabled()


def test_a_session_deleted_elsewhere_is_not_made_anew_by_the_page(start_server, fake_openai, browser):
    server = start_server(**agent_settings(fake_openai))
    fake_openai.script(analysis(), text("Short."))
    browser.open(server.url + "/")
    browser.run_task("answer briefly")
    browser.wait_for_event("task_complete")
    session_id = shown_session(browser)
    assert server.request("DELETE", f"/api/sessions/{session_id}")[0] == 204  # its stream ends; 204 on reconnect
    browser.wait(lambda: browser.state() == ("gone", "Gone: the session was deleted"), message="the gone state")
    browser.wait(lambda: browser.all("#no-sessions") and browser.find("#no-sessions").is_displayed(),
                 message="the emptied session list")
    assert server.request("GET", "/api/sessions")[2]["sessions"] == []


def test_the_page_resumes_after_a_server_restart_without_duplicates(start_server, fake_openai, browser, relay,
                                                                     open_tmp):
    first = start_server(**agent_settings(fake_openai))
    front = relay(first.port)
    gate = run_gated_task(browser.open(front.url + "/"), fake_openai)
    os.killpg(first.process.pid, signal.SIGTERM)  # streams end at once; the task gets a grace period
    browser.wait(lambda: browser.state()[0] == "reconnecting", message="the reconnecting state")
    gate.set()  # the task ends while the page is away: its last events come from the log
    assert first.wait_exit(30) == 0
    second = start_server(open_tmp / "data", **agent_settings(fake_openai))  # the same data
    front.target_port = second.port
    assert_resumed(browser, second)  # nothing missed, nothing twice


def test_a_502_from_the_proxy_shows_reconnecting_and_the_page_recovers(start_server, fake_openai, browser, relay):
    server = start_server(**agent_settings(fake_openai))
    front = relay(server.port)
    gate = run_gated_task(browser.open(front.url + "/"), fake_openai)
    front.answer = "502 Bad Gateway"  # a deploy: the proxy has no server to send the browser's reconnect to
    front.cut()
    browser.wait(lambda: f"{REFUSED}; reconnecting in " in browser.state()[1], message="the page's own reopening")
    gate.set()
    front.answer = None
    assert_resumed(browser, server)


def test_with_keys_the_page_asks_once_and_reopens_a_stream_refused_with_401(start_server, fake_openai, browser,
                                                                            relay):
    server = start_server(**agent_settings(fake_openai, ALEX_API_KEYS=KEY, ALEX_STREAM_TOKEN_TTL_S="1",
                                           ALEX_STREAM_RECONNECT_GRACE_S="0"))
    front = relay(server.port)
    browser.open(front.url + "/")
    browser.wait(lambda: browser.find("#key-panel").get_attribute("open") is not None, message="the key form")
    assert "API key" in browser.text("#notice")
    browser.find("#key-input").send_keys(KEY + "\n")
    browser.wait(lambda: browser.text("#key-panel summary") == "API key (saved)", message="the key saved")
    gate = run_gated_task(browser, fake_openai)
    front.cut()  # the browser reconnects by itself with its first token, expired by then: 401, and it gives up
    browser.wait(lambda: REFUSED in browser.state()[1], message="the page reopening the stream itself")
    gate.set()
    assert_resumed(browser, server, {"Authorization": f"Bearer {KEY}"})
    assert "GET /api/sse 401 " in server.log()  # the browser's own reconnect was refused, the page's was not
    browser.driver.refresh()  # the key is kept: no second question
    browser.wait_for_event("task_complete")
    assert browser.find("#key-panel").get_attribute("open") is None
