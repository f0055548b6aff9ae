"""The LLM client's event-stream decoder follows the WHATWG rules whatever the chunking."""

from __future__ import annotations

import random
import time

import pytest

from alex.agent.llm_stream import sse_events
from alex.agent.llm_types import LLMError
from alex.sse_decode import MAX_LINE_CHARS, EventStreamTooLong, SSEDecoder, SSEEvent
from tests.fakes.openai_schema import FIXTURES_DIR
from tests.sse_parser import SSEParser

TRICKY = (
    "\ufeffdata: first\r\n\r\n"  # BOM, CRLF
    ": a comment\n"
    "data:no space\rdata:  two spaces\r\r"  # CR line ends; only one space is stripped
    "event: error\ndata: {\"a\":\n"
    "data: 1}\n\n"  # multi-line data joined with LF
    "data\n\n"  # a field with no colon: empty data, still an event
    "id: 7\nretry: 10\n\n"  # no data: nothing dispatched
    "unknown: x\ndata: é ünïcode ✓\n\n"
    "data: cut off without a blank line"
).encode()

EXPECTED = [SSEEvent("first"), SSEEvent("no space\n two spaces"), SSEEvent('{"a":\n1}', "error"), SSEEvent(""),
            SSEEvent("é ünïcode ✓")]


def _decode(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder, events, start = SSEDecoder(), [], 0
    for cut in [*cuts, len(data)]:
        events += decoder.feed(data[start:cut])
        start = cut
    return events


def test_the_spec_rules_in_one_feed():
    assert _decode(TRICKY, []) == EXPECTED


def test_byte_by_byte_gives_the_same_events():
    assert _decode(TRICKY, list(range(1, len(TRICKY)))) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(TRICKY)))
def test_every_split_point_gives_the_same_events(cut):
    assert _decode(TRICKY, [cut]) == EXPECTED


def test_a_crlf_split_across_reads_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r\n\r") == []  # that CR may be half of a CRLF: wait for the next byte
    assert decoder.feed(b"\n") == [SSEEvent("a\nb")]


def test_a_cr_at_the_very_end_ends_its_line_when_the_stream_closes():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]\r\r") == []
    assert decoder.close() == [SSEEvent("[DONE]")]


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_the_reference_parser_on_the_recorded_streams(seed):
    rng = random.Random(seed)
    for path in sorted(FIXTURES_DIR.glob("*.sse")):
        data = path.read_bytes()
        cuts = sorted(rng.sample(range(1, len(data)), 25))
        reference = SSEParser()
        reference.feed(data)
        assert [(event.event, event.data) for event in _decode(data, cuts)] == [
            (message.event, message.data) for message in reference.messages]
        assert _decode(data, cuts)[-1] == SSEEvent("[DONE]")


def test_a_long_line_fed_in_small_chunks_takes_linear_time_and_the_cap_ends_it():
    decoder, piece = SSEDecoder(), b"x" * 4096
    started = time.monotonic()
    assert decoder.feed(b"data: ") == []
    for _ in range((MAX_LINE_CHARS - 6) // len(piece)):  # re-splitting the whole buffer each time: minutes
        assert decoder.feed(piece) == []
    assert time.monotonic() - started < 3
    with pytest.raises(EventStreamTooLong, match="a line longer than 8 MiB"):
        decoder.feed(piece)


def test_an_llm_stream_over_the_cap_is_a_non_retryable_llm_error():
    with pytest.raises(LLMError, match="streamed a line longer than 8 MiB") as raised:
        list(sse_events([b"data: ", b"x" * MAX_LINE_CHARS]))
    assert raised.value.retryable is False


def test_a_line_just_under_the_cap_still_decodes():
    decoder = SSEDecoder()
    payload = "y" * (MAX_LINE_CHARS - len("data: "))
    assert decoder.feed(b"data: " + payload.encode()) == []
    assert decoder.feed(b"\n\n") == [SSEEvent(payload)]


def test_an_event_of_many_short_data_lines_is_capped_too():
    decoder, line = SSEDecoder(), b"data: " + b"z" * 1000 + b"\n"
    for _ in range(MAX_LINE_CHARS // 1001):
        assert decoder.feed(line) == []
    with pytest.raises(EventStreamTooLong, match="an event longer than 8 MiB"):
        decoder.feed(line * 2)
    assert SSEDecoder().feed(line + b"\n") == [SSEEvent("z" * 1000)]
