"""marshmallow schemas of the stream's events, for the OpenAPI document (alex/openapi_stream.py) and tests.

The publisher builds event bodies itself; these only document (and let tests check) their shape. Every event of a
task has the fields of `EventSchema`; each event type's own fields come from the `_EVENT_TYPES` table.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate


def _text(description: str, **kwargs: Any) -> fields.String:
    return fields.String(required=True, metadata={"description": description}, **kwargs)


def _count(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


def _flag(description: str) -> fields.Boolean:
    return fields.Boolean(required=True, metadata={"description": description})


def _iteration() -> fields.Integer:
    return _count("The agent loop's iteration, from 1 (0 before the first).")


class ConnectedEventSchema(Schema):
    """`connected`: the stream's first message; its `id:` is the cursor the stream resumes from."""

    session_id = _text("The session this stream carries.")
    last_event_id = _text("The cursor: events after this id follow (`0`: from the start).")


class EventSchema(Schema):
    """Fields common to every domain event (every event of a task)."""

    event_type = _text("The event's type; also its SSE `event:` name.")
    id = _text("The event id, also sent as the SSE `id:` (opaque, increasing within a session).")
    session_id = _text("The session of the task.")
    task_id = _text("The task the event belongs to.", allow_none=True)
    timestamp = _text("When the event happened: RFC 3339 UTC with milliseconds.")
    agent_level = _text("Which agent emitted it: `core` for the main agent.")


STOP_REASONS = ("completed", "max_iterations", "max_tokens", "truncated", "repeated_calls")

# Event type -> (what it means, its own fields beyond EventSchema's), in the order a task emits them.
_EVENT_TYPES: dict[str, tuple[str, dict[str, fields.Field]]] = {
    "task_analysis": ("what the agent understood the task to be (first event of a task).", {
        "action_name": _text("A short name for the action."),
        "goal": _text("The goal the agent works towards."),
    }),
    "iteration_start": ("an iteration of the agent loop begins.", {
        "iteration": _iteration(),
        "total_iters": _count("The iteration cap (ALEX_MAX_ITERATIONS)."),
    }),
    "thinking": ("the model is being asked for its next step.", {
        "iteration": _iteration(),
        "message_count": _count("How many chat messages were sent to the model."),
    }),
    "think_delta": ("a piece of the assistant's text as the model streams it.", {
        "iteration": _iteration(),
        "delta": _text("The next piece of text."),
    }),
    "think_complete": ("the model's reply of this iteration is complete.", {
        "iteration": _iteration(),
        "content": _text("The assistant's text of this iteration (may be empty)."),
        "tool_call_count": _count("How many tools the model asked to run."),
    }),
    "tool_call_start": ("a tool starts running.", {
        "iteration": _iteration(),
        "call_id": _text("The tool call's id (links start, stream and complete)."),
        "tool_name": _text("The tool, e.g. `bash`."),
        "arguments": fields.Raw(required=True, metadata={
            "description": "The tool's arguments: a JSON object, or the model's raw text when it was not JSON."}),
    }),
    "tool_call_stream": ("live output of a running tool (bash).", {
        "call_id": _text("The tool call's id."),
        "tool_name": _text("The tool."),
        "chunk": _text("The next piece of output."),
        "stream": _text("Which output it came from.", validate=validate.OneOf(("stdout", "stderr"))),
    }),
    "tool_call_complete": ("a tool finished; its result goes back to the model.", {
        "call_id": _text("The tool call's id."),
        "tool_name": _text("The tool."),
        "result": _text("The tool's output (capped at ALEX_TOOL_OUTPUT_LIMIT, head and tail kept)."),
        "error": _text("Why the tool failed, or null.", allow_none=True),
        "duration": _count("How long it ran, in milliseconds."),
    }),
    "iteration_complete": ("an iteration of the agent loop ended.", {
        "iteration": _iteration(),
        "tokens_used": _count("Tokens the iteration's model call used (from the API's usage)."),
        "tools_run": _count("How many tools ran."),
    }),
    "task_complete": ("the task ended with an answer (terminal).", {
        "final_answer": _text("The agent's answer."),
        "total_iterations": _count("Iterations the task took."),
        "total_tokens": _count("Tokens the task used in all."),
        "stop_reason": _text(
            "Why it stopped: `completed` (the model answered), `max_iterations` (ALEX_MAX_ITERATIONS), `max_tokens` "
            "(ALEX_TASK_MAX_TOKENS), `truncated` (the answer was cut at the model's output limit twice; the answer "
            "is what it wrote), `repeated_calls` (the model kept repeating a tool call that had already run).",
            validate=validate.OneOf(STOP_REASONS)),
        "duration": _count("How long the task ran, in milliseconds."),
    }),
    "task_cancelled": ("the task was cancelled (terminal).", {
        "reason": _text("Who or what cancelled it."),
    }),
    "error": ("something failed; terminal when `terminal` is true (then the task ends here).", {
        "iteration": _iteration(),
        "phase": _text("Where it failed.",
                       validate=validate.OneOf(("llm", "tool", "internal", "shutdown", "worker_lost"))),
        "error": _text("What went wrong."),
        "recoverable": _flag("The agent carries on after it."),
        "terminal": _flag("The task ends with this event."),
        "retryable": _flag("The task ended through no fault of its own: submitting it again is safe."),
    }),
}


def _event_schema(event_type: str, meaning: str, own_fields: dict[str, fields.Field]) -> type[Schema]:
    """An EventSchema subclass named after the type (`tool_call_start` -> `ToolCallStartEventSchema`)."""
    name = "".join(part.title() for part in event_type.split("_")) + "EventSchema"
    event_type_field = fields.String(required=True, validate=validate.Equal(event_type),
                                     metadata={"description": f"Always `{event_type}`."})
    attributes = {"__doc__": f"`{event_type}`: {meaning}", "__module__": __name__,
                  "event_type": event_type_field, **own_fields}
    return type(name, (EventSchema,), attributes)


# SSE `event:` name -> the schema of its `data:` JSON, in the order a task emits them.
EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "connected": ConnectedEventSchema,
    **{event_type: _event_schema(event_type, meaning, own_fields)
       for event_type, (meaning, own_fields) in _EVENT_TYPES.items()},
}
