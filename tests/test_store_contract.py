"""One contract, both backends: every Store rule the rest of alex relies on holds on SQLite and on Redis (a real
redis-server), and the Redis bus delivers what any process appended, in order, through dropped connections."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from alex.clock import now_iso
from alex.store.base import NewEvent, SessionBusyError, SessionClosing, SessionGone, Store, StoredEvent, StreamStart
from alex.store.redis_bus import RedisBus
from alex.store.redis_store import RedisStore
from tests.e2e.server import free_port
from tests.redis_fixtures import start_redis
from tests.store_fixtures import run_threads, wait_for

WAIT_S = 10.0


@pytest.fixture(params=["sqlite", "redis"])
def make_any_store(request, make_store, redis_url, redis_prefix) -> Iterator[Callable[[], Store]]:
    """Open stores of one backend over the same data (a second one is another process), closed at teardown."""
    if request.param == "sqlite":
        yield make_store
        return
    stores: list[RedisStore] = []

    def make() -> Store:
        stores.append(RedisStore(redis_url, prefix=redis_prefix))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_any_store) -> Store:
    return make_any_store()


def new_task(store: Store, session_id: str, task_id: str, owner: str = "") -> None:
    store.create_task({"id": task_id, "session_id": session_id, "owner": owner, "task": "do it",
                       "created_at": now_iso(), "worker": "w", "lease_until": time.time() + 60})


def terminal(session_id: str, n: int = 0) -> NewEvent:
    return NewEvent(session_id, "task_complete", json.dumps({"event_type": "task_complete", "n": n}))


def test_sessions_are_created_once_and_read_back(store):
    assert store.ensure_session("s1", "owner-a") is True
    assert store.ensure_session("s1", "owner-b") is False
    session = store.get_session("s1")
    assert (session["id"], session["owner"], session["messages"], session["todos"], session["closing"]) == \
        ("s1", "owner-a", [], [], False)
    assert store.get_session("nope") is None
    store.save_messages("s1", [{"role": "user", "content": "héllo \ud800"}])
    store.save_todos("s1", [{"id": "1", "content": "x", "status": "pending"}])
    session = store.get_session("s1")
    assert session["messages"] == [{"role": "user", "content": "héllo \ufffd"}]  # stored as valid UTF-8
    assert session["todos"][0]["status"] == "pending"
    with pytest.raises(SessionGone):
        store.save_messages("nope", [])


def test_sessions_list_newest_first_per_owner_with_status(store):
    for name in ("a", "b", "c"):
        store.ensure_session(name, "me" if name != "b" else "other")
        time.sleep(0.002)  # distinct creation times, in order
    new_task(store, "c", "t-c", "me")
    sessions, total = store.list_sessions(None, 10, 0)
    assert ([s["id"] for s in sessions], total) == (["c", "b", "a"], 3)
    mine, total = store.list_sessions("me", 1, 1)
    assert ([s["id"] for s in mine], total) == (["a"], 2)
    assert {s["id"]: (s["status"], s["task_count"]) for s in sessions}["c"] == ("running", 1)


def test_one_active_task_per_session_across_concurrent_creators(make_any_store):
    stores = [make_any_store(), make_any_store()]  # two processes
    stores[0].ensure_session("s1")

    def create(index: int) -> str:
        try:
            new_task(stores[index % 2], "s1", f"t{index}")
            return "created"
        except SessionBusyError:
            return "busy"

    assert sorted(run_threads(create, 8)) == ["busy"] * 7 + ["created"]
    assert stores[1].active_task("s1")["status"] == "queued"


def test_closing_and_missing_sessions_take_no_task(store):
    with pytest.raises(SessionGone):
        new_task(store, "nope", "t0")
    store.ensure_session("s1")
    assert store.mark_session_closing("s1") is True
    with pytest.raises(SessionClosing):
        new_task(store, "s1", "t1")


def test_a_task_starts_once_and_ends_once_with_exactly_one_terminal_event(make_any_store):
    stores = [make_any_store(), make_any_store()]
    stores[0].ensure_session("s1")
    new_task(stores[0], "s1", "t1")
    assert stores[0].start_task("t1", "w1", time.time() + 60) is True
    assert stores[1].start_task("t1", "w2", time.time() + 60) is False
    before = stores[0].append_event("s1", "note", '{"n":1}')
    ended = run_threads(lambda i: stores[i % 2].finish_task_with_event("t1", "completed", terminal("s1", i),
                                                                       final_answer=str(i)), 6)
    winners = [event for event in ended if event is not None]
    assert len(winners) == 1
    logged = stores[1].events_after("s1", "0", 10)
    assert [event.event_type for event in logged] == ["note", "task_complete"]
    assert logged[0].id == before.id and logged[1].id == winners[0].id
    task = stores[1].get_task("t1")
    assert task["status"] == "completed" and task["final_answer"] == str(json.loads(logged[1].body)["n"])
    assert stores[1].active_task("s1") is None
    new_task(stores[1], "s1", "t2")  # the session is free again


def test_the_log_pages_in_order_and_goes_with_its_session(store):
    store.ensure_session("s1")
    store.ensure_session("s2")
    ids = [store.append_event("s1", "n", json.dumps({"n": n})).id for n in range(7)]
    other = store.append_event("s2", "n", "{}")
    assert [e.id for e in store.events_after("s1", "0", 3)] == ids[:3]
    assert [e.id for e in store.events_after("s1", ids[2], 100)] == ids[3:]
    assert store.latest_event_id("s1") == ids[-1] and store.latest_event_id("nope") is None
    assert all(store.is_event_id(event_id) for event_id in ids) and not store.is_event_id("abc")
    assert store.delete_session("s1") is True
    assert store.events_after("s1", "0", 100) == []
    with pytest.raises(SessionGone):
        store.append_event("s1", "n", "{}")
    assert [e.id for e in store.events_after("s2", "0", 10)] == [other.id]


def test_owner_namespaced_session_ids_work_like_any_other(store):
    """API keys' sessions are stored as `<owner id>.<client id>`: the dot is no separator to either backend."""
    mine, theirs = "key-0123456789ab.plan", "key-ba9876543210.plan"
    assert store.ensure_session(mine, "key-0123456789ab") and store.ensure_session(theirs, "key-ba9876543210")
    new_task(store, mine, "t-mine", "key-0123456789ab")
    logged = store.append_event(mine, "n", "{}")
    assert store.get_session(mine)["id"] == mine and store.get_session("plan") is None
    assert [s["id"] for s in store.list_sessions("key-0123456789ab", 10, 0)[0]] == [mine]
    assert [t["id"] for t in store.list_tasks(None, mine, None, 10, 0)[0]] == ["t-mine"]
    assert store.list_tasks(None, theirs, None, 10, 0) == ([], 0)
    assert [e.id for e in store.events_after(mine, "0", 10)] == [logged.id]
    assert store.events_after(theirs, "0", 10) == []
    assert store.delete_session(mine) and store.get_session(theirs) is not None


def test_cursor_rules(store):
    store.ensure_session("s1")
    old = [store.append_event("s1", "n", "{}").id for _ in range(3)]
    resumed = lambda cursor: store.stream_start("s1", cursor).cursor  # noqa: E731
    assert resumed(None) == old[-1]
    assert resumed("0") == "0"
    assert resumed(old[0]) == old[0]
    store.delete_session("s1")
    time.sleep(0.002)  # Redis ids are milliseconds: the new session starts in a later one
    store.ensure_session("s1")
    store.ensure_session("s2")
    newer = store.append_event("s2", "n", "{}").id
    assert resumed(old[-1]) == "0"  # an earlier incarnation's cursor: from the start
    assert resumed(newer) == newer  # newer than the session's log: after it, no replay


def test_a_stream_start_answers_owner_closing_the_cursor_and_the_replays_first_page_in_one_call(store):
    assert store.stream_start("s1", None) is None and store.stream_start("s1", "0", 10) is None
    store.ensure_session("s1", "alice")
    assert store.stream_start("s1", None, 10) == StreamStart("alice", False, "0")
    old = [store.append_event("s1", "n", f'{{"n":{n}}}') for n in range(3)]
    assert store.stream_start("s1", None, 10) == StreamStart("alice", False, old[-1].id)  # after the newest: none
    assert store.stream_start("s1", "0") == StreamStart("alice", False, "0")  # no replay asked
    assert store.stream_start("s1", "0", 10) == StreamStart("alice", False, "0", tuple(old))
    assert store.stream_start("s1", old[0].id, 1) == StreamStart("alice", False, old[0].id, (old[1],))
    assert store.stream_start("s1", old[-1].id, 10) == StreamStart("alice", False, old[-1].id)
    store.delete_session("s1")
    time.sleep(0.002)  # Redis ids are milliseconds: the new session starts in a later one
    store.ensure_session("s1", "bob")
    new = store.append_event("s1", "n", "{}")
    # An earlier incarnation's cursor: the whole new session.
    assert store.stream_start("s1", old[-1].id, 10) == StreamStart("bob", False, "0", (new,))
    assert store.mark_session_closing("s1")
    assert store.stream_start("s1", None).closing is True


def test_leases_expire_and_renew(store):
    store.ensure_session("s1")
    new_task(store, "s1", "t1")
    store.start_task("t1", "w", time.time() - 1)
    assert [task["id"] for task in store.expired_tasks(time.time())] == ["t1"]
    store.renew_leases(["t1"], time.time() + 60)
    assert store.expired_tasks(time.time()) == []


def test_a_shared_secret_is_the_same_for_every_process(make_any_store):
    first, second = make_any_store(), make_any_store()
    assert first.shared_secret("tokens") == second.shared_secret("tokens")
    assert len(first.shared_secret("tokens")) >= 32
    assert first.shared_secret("tokens") != first.shared_secret("other")


# The Redis bus.


@pytest.fixture
def redis_pair(redis_url, redis_prefix) -> Iterator[tuple[RedisStore, RedisStore]]:
    stores = (RedisStore(redis_url, prefix=redis_prefix), RedisStore(redis_url, prefix=redis_prefix))
    yield stores
    for store in stores:
        store.close()


def collect(bus: RedisBus) -> list[StoredEvent]:
    received: list[StoredEvent] = []
    bus.start(received.append)
    return received


def test_the_bus_delivers_every_process_appends_in_order_with_the_same_ids(redis_url, redis_pair):
    here, there = redis_pair
    buses = [RedisBus(redis_url, here.bus_key), RedisBus(redis_url, here.bus_key)]
    received = [collect(bus) for bus in buses]
    try:
        here.ensure_session("s1")
        appended = [(here if n % 2 else there).append_event("s1", "n", json.dumps({"n": n})) for n in range(50)]
        for events in received:
            wait_for(lambda events=events: len(events) >= 50, timeout=WAIT_S)
            assert events == appended
    finally:
        for bus in buses:
            bus.close()


def test_the_bus_loses_nothing_when_its_connection_is_killed(redis_url, redis_pair):
    store, _ = redis_pair
    bus = RedisBus(redis_url, store.bus_key)
    received = collect(bus)
    admin = redis.Redis.from_url(redis_url)
    try:
        store.ensure_session("s1")
        first = [store.append_event("s1", "n", "{}") for _ in range(5)]
        wait_for(lambda: len(received) >= 5, timeout=WAIT_S)
        admin.client_kill_filter(_type="normal", skipme=True)  # every other client, the bus's reader included
        later = [store.append_event("s1", "n", "{}") for _ in range(5)]
        wait_for(lambda: len(received) >= 10, timeout=WAIT_S)
        assert received == first + later
    finally:
        bus.close()
        admin.close()


def test_an_append_during_a_redis_restart_waits_and_is_logged_once(tmp_path):
    port = free_port()
    server = start_redis(port, tmp_path, appendonly=True)
    store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix="restart:")
    try:
        store.ensure_session("s1")
        first = store.append_event("s1", "n", '{"n":1}')
        server.terminate()
        server.wait(10)
        appended: list[StoredEvent] = []
        publisher = threading.Thread(target=lambda: appended.append(store.append_event("s1", "n", '{"n":2}')))
        publisher.start()
        publisher.join(0.5)
        assert publisher.is_alive()  # the task is held back while Redis is away, not failed
        server = start_redis(port, tmp_path, appendonly=True)  # the same data comes back
        publisher.join(WAIT_S)
        assert not publisher.is_alive()
        assert [event.id for event in store.events_after("s1", "0", 10)] == [first.id, appended[0].id]
    finally:
        store.close()
        server.terminate()
        server.wait(10)


BUSY_SCRIPT = """
local start = redis.call('TIME')
local now = start
while (now[1] - start[1]) * 1000000 + (now[2] - start[2]) < tonumber(ARGV[1]) do now = redis.call('TIME') end
return 1
"""


def test_more_callers_than_the_pool_holds_wait_for_a_connection_instead_of_failing(redis_url, redis_pair):
    store, _ = redis_pair
    store.ensure_session("crowd")
    busy = redis.Redis.from_url(redis_url)
    blocker = threading.Thread(target=busy.eval, args=(BUSY_SCRIPT, 0, 500_000))
    blocker.start()  # Redis answers nobody for half a second: every caller below holds a connection at once
    try:
        owners = run_threads(lambda _: store.get_session("crowd")["owner"], 250)
    finally:
        blocker.join(WAIT_S)
        busy.close()
    assert owners == [""] * 250
