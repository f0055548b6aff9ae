"""The WebSocket form of a stream (alex/streaming/ws_messages.py): SSE bytes cut anywhere, one JSON message each."""

from __future__ import annotations

import json

from alex.store.base import StoredEvent
from alex.streaming.sse import PING, encode_event, encode_frame
from alex.streaming.ws_messages import StreamMessages


def stored(event_id: str, event_type: str, fields: dict) -> StoredEvent:
    body = json.dumps({"event_type": event_type, **fields}, ensure_ascii=False, separators=(",", ":"))
    return StoredEvent(id=event_id, session_id="s", event_type=event_type, body=body)


def test_stream_bytes_cut_anywhere_become_the_same_messages():
    connected = encode_frame('{"session_id":"s","last_event_id":"0"}', event="connected", event_id="0", retry_ms=3000)
    events = [stored("1", "thinking", {"iteration": 1}), stored("2", "think_delta", {"delta": "a\nb \u2028 ü"})]
    data = connected + b"".join(encode_event(e) for e in events) + PING + encode_frame(retry_ms=3000)
    whole = list(StreamMessages().feed(data))
    for cut in range(1, len(data)):
        messages = StreamMessages()
        assert [*messages.feed(data[:cut]), *messages.feed(data[cut:])] == whole
    texts = [json.loads(text) for text in whole if text is not None]
    assert whole[-1] is None and whole.count(None) == 1  # the ping; the lone retry: carries no event
    assert [(m["id"], m["event"]) for m in texts] == [("0", "connected"), ("1", "thinking"), ("2", "think_delta")]
    assert texts[2]["data"] == {"event_type": "think_delta", "id": "2", "delta": "a\nb \u2028 ü"}
    assert whole[2].endswith(',"data":{"event_type":"think_delta","id":"2","delta":"a\\nb \u2028 ü"}}')
