"""SSE encoding: every frame parses (WHATWG) to exactly the message meant; no field can inject a frame."""

from __future__ import annotations

import json

import pytest

from alex.store.base import StoredEvent
from alex.streaming.sse import PING, encode_body, encode_comment, encode_event, encode_frame, event_data
from tests.sse_parser import Message, SSEParser


def parse(raw: bytes, chunk_size: int | None = None) -> SSEParser:
    """Feed `raw` to a fresh parser, whole or in chunks of `chunk_size` bytes."""
    parser = SSEParser()
    if chunk_size is None:
        parser.feed(raw)
    else:
        for start in range(0, len(raw), chunk_size):
            parser.feed(raw[start:start + chunk_size])
    return parser


def only_message(raw: bytes) -> Message:
    """The single message `raw` encodes (fails when it encodes none or several)."""
    messages = parse(raw).messages
    assert len(messages) == 1, messages
    return messages[0]


@pytest.mark.parametrize("data", [
    "plain",
    "",
    "two\nlines",
    "crlf\r\nline",
    "cr\ronly",
    "blank\n\nbetween",
    "trailing newline\n",
    "\nleading newline",
    "\r\n\r\n",
    "mixed\r\n\r\n\n\rend",
    " leading space kept",
    "colon: inside: data",
])
def test_data_round_trips_with_line_breaks_normalised_to_lf(data):
    message = only_message(encode_frame(data, event="note"))
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert message.data == expected
    assert message.event == "note"


def test_data_line_breaks_become_separate_data_lines():
    assert encode_frame("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_double_newline_in_data_does_not_end_the_frame():
    raw = encode_frame("first\n\ndata: evil\n\nevent: evil\nid: 666", event="thinking", event_id="7")
    parser = parse(raw)
    assert len(parser.messages) == 1
    message = parser.messages[0]
    assert message.event == "thinking"
    assert message.id == "7"
    assert message.data == "first\n\ndata: evil\n\nevent: evil\nid: 666"
    assert parser.last_event_id == "7"


@pytest.mark.parametrize("event_name, expected", [
    ("tool_call_start\n\ndata: evil", "tool_call_startdata: evil"),
    ("a\r\nid: 666", "aid: 666"),
    ("a\rb", "ab"),
    ("nul\x00inside", "nulinside"),
])
def test_line_breaks_and_nul_are_removed_from_event_names(event_name, expected):
    parser = parse(encode_frame("payload", event=event_name, event_id="5"))
    assert [(m.event, m.data, m.id) for m in parser.messages] == [(expected, "payload", "5")]


@pytest.mark.parametrize("event_id, expected", [
    ("12\n\ndata: evil", "12data: evil"),
    ("12\r\nevent: evil", "12event: evil"),
    ("1\r2", "12"),
    ("4\x002", "42"),  # a NUL would make a browser ignore the whole id field
])
def test_line_breaks_and_nul_are_removed_from_ids(event_id, expected):
    parser = parse(encode_frame("payload", event="e", event_id=event_id))
    assert [(m.event, m.data, m.id) for m in parser.messages] == [("e", "payload", expected)]
    assert parser.last_event_id == expected


def test_id_zero_is_sent():
    assert only_message(encode_frame("x", event_id="0")).id == "0"


def test_empty_id_is_sent_and_clears_the_last_event_id():
    parser = parse(encode_frame("a", event_id="9") + encode_frame("b", event_id=""))
    assert b"id: \n" in encode_frame("b", event_id="")
    assert [m.id for m in parser.messages] == ["9", ""]
    assert parser.last_event_id == ""


def test_fields_left_out_when_none():
    raw = encode_frame("x")
    assert raw == b"data: x\n\n"
    message = only_message(raw)
    assert (message.event, message.id, message.retry) == ("message", None, None)


def test_retry_only_frame_sets_retry_without_a_message():
    raw = encode_frame(retry_ms=3000)
    assert raw == b"retry: 3000\n\n"
    parser = parse(raw)
    assert parser.messages == []
    assert parser.retry == 3000


def test_retry_with_data_is_carried_by_the_message():
    message = only_message(encode_frame("x", retry_ms=1500, event_id="3"))
    assert message.retry == 1500
    assert message.id == "3"


@pytest.mark.parametrize("data", ["héllo wörld", "日本語のテキスト", "emoji 🚀🔥", "ascii ✓ and\nnew line ünïcode"])
@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_non_ascii_data_is_utf8_and_survives_any_chunking(data, chunk_size):
    raw = encode_frame(data, event="thinking", event_id="11")
    assert raw.decode("utf-8")  # bytes are UTF-8
    parser = parse(raw, chunk_size)
    assert [(m.event, m.data, m.id) for m in parser.messages] == [("thinking", data, "11")]


def test_non_ascii_event_name_survives():
    message = only_message(encode_frame("x", event="événement"))
    assert message.event == "événement"


def test_comment_is_ignored_by_clients():
    parser = parse(encode_comment("hello") + encode_frame("x"))
    assert parser.comments == ["hello"]
    assert [m.data for m in parser.messages] == ["x"]


def test_multi_line_comment_cannot_inject_a_frame():
    raw = encode_comment("one\n\ndata: evil\r\nid: 9")
    parser = parse(raw)
    assert parser.messages == []
    assert parser.last_event_id is None
    assert parser.comments == ["one", "", "data: evil", "id: 9"]


def test_ping_is_a_comment():
    parser = parse(PING)
    assert parser.messages == []
    assert parser.comments == ["ping"]
    assert PING == encode_comment("ping")


def test_several_frames_in_one_write_parse_as_separate_messages():
    raw = b"".join(encode_frame(f"d{n}", event="e", event_id=str(n)) for n in range(5))
    assert [(m.data, m.id) for m in parse(raw, 7).messages] == [(f"d{n}", str(n)) for n in range(5)]


def stored(body_fields: dict, event_id: str = "42", event_type: str = "tool_call_start") -> StoredEvent:
    """A logged event whose body is what the publisher would store."""
    return StoredEvent(event_id, "S", event_type, encode_body(event_type, {"session_id": "S", **body_fields}))


def test_encode_body_is_one_line_with_event_type_first_and_no_id():
    body = encode_body("thinking", {"session_id": "S", "text": "a\nb", "name": "é"})
    assert "\n" not in body
    assert list(json.loads(body)) == ["event_type", "session_id", "text", "name"]
    assert "é" in body  # not \u-escaped
    assert "id" not in json.loads(body)


def test_event_data_adds_the_log_id_after_event_type():
    event = stored({"iteration": 1, "arguments": {"command": "ls -la"}})
    data = json.loads(event_data(event))
    assert list(data)[:2] == ["event_type", "id"]
    assert data["id"] == "42"
    assert data["event_type"] == "tool_call_start"
    assert data["arguments"] == {"command": "ls -la"}


def test_event_data_adds_id_when_body_does_not_start_with_event_type():
    event = StoredEvent("7", "S", "custom", '{"x":1}')
    assert json.loads(event_data(event)) == {"id": "7", "x": 1}


def test_event_data_with_hostile_event_type_stays_valid_json():
    event_type = 'a"b\n\\c'
    event = StoredEvent("8", "S", event_type, encode_body(event_type, {"x": 1}))
    assert json.loads(event_data(event)) == {"event_type": event_type, "id": "8", "x": 1}


def test_encode_event_frame_has_id_event_and_one_json_data_line():
    event = stored({"output": "line1\nline2\n\ndata: evil", "note": "ünï"}, event_id="99")
    raw = encode_event(event)
    assert raw.startswith(b"id: 99\nevent: tool_call_start\ndata: {")
    assert raw.count(b"\ndata:") == 1  # JSON escapes the newlines: the data is one line
    message = only_message(raw)
    assert (message.event, message.id) == ("tool_call_start", "99")
    assert message.json() == {"event_type": "tool_call_start", "id": "99", "session_id": "S",
                              "output": "line1\nline2\n\ndata: evil", "note": "ünï"}


def test_encode_event_is_deterministic():
    event = stored({"a": 1})
    assert encode_event(event) == encode_event(event)
