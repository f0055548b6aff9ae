"""GroupCommit: concurrent writers share batches; each gets its own outcome; a failure never strands a writer."""

from __future__ import annotations

import threading
import time

import pytest

from alex.store.base import SessionGone, StoreError
from alex.store.group_commit import GroupCommit
from alex.store.oswork import SerialOSThread

WAIT_S = 20.0


class Recorder:
    """A write_batch that records its batches; it holds the first batch until released, so others pile up."""

    def __init__(self, fail_on: str | None = None, raise_on: str | None = None):
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        self.fail_on, self.raise_on = fail_on, raise_on

    def __call__(self, requests: list[str]) -> list[object]:
        self.batches.append(list(requests))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release_first.wait(WAIT_S)
        if self.raise_on in requests:
            raise StoreError("disk full")
        return [SessionGone(r) if r == self.fail_on else f"stored {r}" for r in requests]


@pytest.fixture
def thread():
    worker = SerialOSThread("test-store")
    yield worker
    worker.close()


def submit_all(commit: GroupCommit, requests: list[str], queued=None) -> dict[str, object]:
    """Submit each request from its own thread; {request: outcome or exception}. `queued()` runs once every
    request is waiting (with a batch held, none can be written before that)."""
    results: dict[str, object] = {}

    def run(request: str) -> None:
        try:
            results[request] = commit.submit(request)
        except Exception as error:  # recorded for the assertions
            results[request] = error

    threads = [threading.Thread(target=run, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    if queued is not None:
        wait_until(lambda: commit.waiting == len(requests))
        queued()
    for t in threads:
        t.join(WAIT_S)
        assert not t.is_alive(), "a writer was never answered"
    return results


def wait_until(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)  # bounded poll of other threads


def start_first_batch(commit: GroupCommit, recorder: Recorder) -> threading.Thread:
    """Submit "first" and wait until its batch is being written (and held)."""
    first = threading.Thread(target=commit.submit, args=("first",))
    first.start()
    assert recorder.first_started.wait(WAIT_S)
    return first


def test_writers_that_arrive_during_a_write_share_the_next_batch(thread):
    recorder = Recorder()
    commit = GroupCommit(thread.call, recorder)
    first = start_first_batch(commit, recorder)
    late = [f"r{n}" for n in range(20)]
    results = submit_all(commit, late, queued=recorder.release_first.set)
    first.join(WAIT_S)
    assert results == {r: f"stored {r}" for r in late}
    assert recorder.batches[0] == ["first"]
    assert len(recorder.batches) == 2 and sorted(recorder.batches[1]) == sorted(late)  # one batch for all


def test_a_failed_request_fails_alone(thread):
    recorder = Recorder(fail_on="r3")
    recorder.release_first.set()
    commit = GroupCommit(thread.call, recorder)
    results = submit_all(commit, [f"r{n}" for n in range(6)])
    assert isinstance(results["r3"], SessionGone)
    assert all(results[f"r{n}"] == f"stored r{n}" for n in (0, 1, 2, 4, 5))


def test_a_batch_that_raises_fails_its_writers_and_the_next_batch_still_runs(thread):
    recorder = Recorder(raise_on="bad")
    recorder.release_first.set()
    commit = GroupCommit(thread.call, recorder)
    with pytest.raises(StoreError, match="disk full"):
        commit.submit("bad")
    assert commit.submit("good") == "stored good"


def test_batches_are_capped(thread):
    recorder = Recorder()
    commit = GroupCommit(thread.call, recorder, max_batch=3)
    first = start_first_batch(commit, recorder)
    results = submit_all(commit, [f"r{n}" for n in range(10)], queued=recorder.release_first.set)
    first.join(WAIT_S)
    assert results == {f"r{n}": f"stored r{n}" for n in range(10)}
    assert [len(batch) for batch in recorder.batches] == [1, 3, 3, 3, 1]
