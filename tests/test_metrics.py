"""GET /metrics: Prometheus text whose values follow tasks, LLM calls and streams; one registry per app; deep health."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alex.api.ops import redis_answers
from alex.config import ConfigError
from alex.observability.metrics import Metrics
from alex.streaming.sse import PING
from tests.agent_support import agent_settings, analysis, run_task, submit, wait_until_ended
from tests.e2e.server import free_port
from tests.fakes.openai_server import error, text, tool_calls


def samples(client, headers=None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The app's metrics as {(sample name, sorted labels): value}, parsed by prometheus-client's own parser."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200
    parsed = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def value(parsed, name: str, **labels: str) -> float:
    """One sample's value (0 when the labelled series was never touched)."""
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def agent_app(make_app, fake_openai):
    """An app whose agent talks to the fake OpenAI server."""
    return make_app(**agent_settings(fake_openai))


def test_metrics_are_prometheus_text_and_openmetrics_on_request(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    body = response.get_data(as_text=True)
    for name in ("alex_streams_open", "alex_events_published_total", "alex_event_deliveries_total",
                 "alex_stream_log_reads_total", "alex_stream_overflows_total", "alex_tasks_total",
                 "alex_tasks_failed_total", "alex_task_duration_seconds", "alex_llm_call_duration_seconds",
                 "alex_llm_tokens_total"):
        assert f"# TYPE {name} " in body, name
    assert "_created" not in body
    open_metrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert open_metrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert open_metrics.get_data(as_text=True).endswith("# EOF\n")


def test_a_task_moves_the_task_llm_token_and_event_metrics(agent_app, fake_openai):
    fake_openai.script(analysis(), tool_calls(("bash", {"command": "echo hi"})), text("Done."))
    client = agent_app.test_client()
    before = samples(client)
    run = run_task(agent_app, client, "say hi", "metered")
    after = samples(client)
    assert value(after, "alex_tasks_total", outcome="completed") == 1
    assert value(after, "alex_task_duration_seconds_count", outcome="completed") == 1
    assert value(after, "alex_task_duration_seconds_sum", outcome="completed") > 0
    assert value(after, "alex_llm_call_duration_seconds_count", kind="stream", outcome="ok") == 3  # analysis too
    assert value(after, "alex_llm_tokens_total", kind="prompt") == 3 * 20  # the fake reports 20 + 10 per reply
    assert value(after, "alex_llm_tokens_total", kind="completion") == 3 * 10
    for event_type in set(run.types()):
        assert value(after, "alex_events_published_total", event_type=event_type) == run.types().count(event_type)
    assert value(before, "alex_tasks_total", outcome="completed") == 0


def test_a_failed_task_counts_by_phase_and_its_llm_error(agent_app, fake_openai):
    fake_openai.script(analysis(), error(401, "Incorrect API key provided."))
    client = agent_app.test_client()
    run = run_task(agent_app, client, "fail please", "failing")
    assert run.task["status"] == "failed"
    after = samples(client)
    assert value(after, "alex_tasks_total", outcome="failed") == 1
    assert value(after, "alex_tasks_failed_total", phase="llm") == 1
    assert value(after, "alex_tasks_total", outcome="completed") == 0
    assert value(after, "alex_llm_call_duration_seconds_count", kind="stream", outcome="error") == 1


def test_a_cancelled_task_counts_as_cancelled_with_its_duration(app, client, controlled_work):
    accepted = submit(client, "wait for me")
    assert controlled_work.started.wait(10)
    assert client.post(f"/api/tasks/{accepted['task_id']}/cancel").status_code == 202
    assert wait_until_ended(app, accepted["task_id"])["status"] == "cancelled"
    after = samples(client)
    assert value(after, "alex_tasks_total", outcome="cancelled") == 1
    assert value(after, "alex_task_duration_seconds_count", outcome="cancelled") == 1
    assert value(after, "alex_tasks_failed_total", phase="llm") == 0


@pytest.fixture
def stream_app(make_app, controlled_work):
    """Short heartbeat (stream reads wake often) and small stream queues (overflow is easy to cause)."""
    return make_app(work=controlled_work, ALEX_SSE_HEARTBEAT_S="0.05", ALEX_SSE_BUFFER="2")


def received(count: int):
    """A read_until predicate: `count` messages besides `connected` arrived."""
    return lambda messages: len([m for m in messages if m.event != "connected"]) >= count


def test_streams_open_replays_and_deliveries(stream_app, open_stream):
    client = stream_app.test_client()
    publisher = stream_app.extensions["alex"].publisher
    stream = open_stream(client, "session_id=watched")
    assert value(samples(client), "alex_streams_open") == 1
    stream.read_until(lambda messages: bool(messages))  # connected; the replay from the cursor comes next
    publisher.publish("watched", "note", n=1)
    stream.read_until(received(1))
    opened = samples(client)
    assert value(opened, "alex_stream_log_reads_total", reason="replay") == 1
    assert value(opened, "alex_event_deliveries_total") == 1
    assert value(opened, "alex_events_published_total", event_type="note") == 1
    stream.close()
    closed = samples(client)
    assert value(closed, "alex_streams_open") == 0
    assert value(closed, "alex_stream_overflows_total") == 0


def test_a_stream_out_of_the_window_counts_one_overflow_then_a_catch_up_from_the_log(stream_app, open_stream):
    client = stream_app.test_client()
    publisher = stream_app.extensions["alex"].publisher
    stream = open_stream(client, "session_id=slow")
    publisher.publish("slow", "note", n=0)
    stream.read_until(received(1))  # the replay from the log
    stream.read_until(lambda _: PING in stream.chunks)  # a heartbeat: the stream is up to date and waits
    for n in range(1, 11):  # the window holds 2 to 4 frames: the stream falls behind once, not ten times
        publisher.publish("slow", "note", n=n)
    assert value(samples(client), "alex_event_deliveries_total") == 11  # offered to the one stream each time
    messages = stream.read_until(received(11))
    assert [m.json()["n"] for m in messages if m.event == "note"] == list(range(11))
    caught_up = samples(client)
    assert value(caught_up, "alex_stream_overflows_total") == 1
    assert value(caught_up, "alex_stream_log_reads_total", reason="catch_up") >= 1
    assert value(caught_up, "alex_stream_log_reads_total", reason="replay") == 1


def test_each_app_has_its_own_registry(make_app, controlled_work):
    first, second = make_app(work=controlled_work), make_app(work=controlled_work)
    assert first.extensions["alex_metrics"].registry is not second.extensions["alex_metrics"].registry
    first.extensions["alex"].store.ensure_session("one")
    first.extensions["alex"].publisher.publish("one", "note")
    assert value(samples(first.test_client()), "alex_events_published_total", event_type="note") == 1
    assert value(samples(second.test_client()), "alex_events_published_total", event_type="note") == 0


def test_multiprocess_mode_needs_an_existing_directory(tmp_path):
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(str(tmp_path / "missing"))


def test_multiprocess_mode_needs_the_variable_before_the_process_starts(make_app, controlled_work, tmp_path):
    # This test process imported prometheus-client without PROMETHEUS_MULTIPROC_DIR: its values live
    # in memory, so a directory named only in the app's settings would never be written.
    with pytest.raises(ConfigError, match="before the process starts"):
        make_app(work=controlled_work, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))


def test_redis_answers_a_ping_and_a_closed_port_does_not(redis_url):
    assert redis_answers(redis_url)
    assert not redis_answers(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)


def test_deep_health_names_redis_when_it_does_not_answer(app, client, redis_url):
    svc = app.extensions["alex"]
    # An app on SQLite whose REDIS_URL is then changed: the health check only reads the URL.
    svc.config = dataclasses.replace(svc.config, redis_url=redis_url)
    assert client.get("/health?deep=1").get_json() == {"status": "ok"}
    svc.config = dataclasses.replace(svc.config, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    response = client.get("/health?deep=1")
    assert response.status_code == 503
    assert response.get_json()["error"]["details"]["failing"] == ["redis"]
    assert client.get("/health").status_code == 200  # the shallow check never touches backends
