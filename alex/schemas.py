"""marshmallow schemas: request bodies and query strings in, resources out."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_dump, pre_load, validate, validates

from alex.ids import ID_PATTERN

_ID = validate.Regexp(ID_PATTERN, error="Must be 1-128 characters of letters, digits, '_' or '-'.")
TASK_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


class StrictSchema(Schema):
    """Unknown fields are an error (422 with the field named), not silently ignored."""

    class Meta:
        unknown = RAISE


class TaskCreateSchema(StrictSchema):
    """`POST /api/tasks` body: the task text and, optionally, the session to run it in."""

    task = fields.String(required=True, metadata={"description": "What the agent should do."})
    session_id = fields.String(validate=_ID, metadata={"description": "Session to continue; new when absent."})

    def __init__(self, max_task_chars: int = 32000, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_task_chars = max_task_chars

    @pre_load
    def drop_empty_session(self, data: Any, **kwargs: Any) -> Any:
        """Treat `"session_id": ""` or null as absent (a new session), as the Go server did."""
        if isinstance(data, dict) and data.get("session_id") in ("", None):
            data = {key: value for key, value in data.items() if key != "session_id"}
        return data

    @validates("task")
    def check_task(self, value: str, **kwargs: Any) -> None:
        """A task is non-blank and at most ALEX_MAX_TASK_CHARS characters."""
        if not value.strip():
            raise ValidationError("Must not be empty.")
        if len(value) > self.max_task_chars:
            raise ValidationError(f"Must be at most {self.max_task_chars} characters (got {len(value)}).")


class PageQuerySchema(StrictSchema):
    """`limit` (1-100, default 20) and `offset` (default 0) of a listing."""

    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10**9))


class TaskListQuerySchema(PageQuerySchema):
    """`GET /api/tasks` filters."""

    session_id = fields.String(validate=_ID)
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))


class SessionListQuerySchema(PageQuerySchema):
    """`GET /api/sessions`: `detail=1` gives objects instead of ids."""

    detail = fields.Boolean(load_default=False)


class StreamQuerySchema(StrictSchema):
    """`GET /api/sse` query (session_id presence is checked first, with its own error)."""

    session_id = fields.String(required=True, validate=_ID)
    last_event_id = fields.String(validate=validate.Regexp(r"^\d{1,20}(-\d{1,20})?$", error="Must be an event id."))
    access_token = fields.String(load_only=True)


class UsageSchema(Schema):
    """Tokens used by a task, as reported by the LLM API."""

    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()


class TaskSchema(Schema):
    """A task as the API shows it."""

    id = fields.String()
    session_id = fields.String()
    task = fields.String()
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    final_answer = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    iterations = fields.Integer()
    usage = fields.Nested(UsageSchema)

    @post_dump(pass_original=True)
    def add_usage(self, data: dict[str, Any], original: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Group the token counters of the record under `usage`."""
        data["usage"] = {key: original.get(key) or 0 for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return data


class TaskAcceptedSchema(Schema):
    """`POST /api/tasks` answer (the Go server's shape)."""

    status = fields.String()
    session_id = fields.String()
    task_id = fields.String()
    message = fields.String()


class SessionSummarySchema(Schema):
    """A session in `GET /api/sessions?detail=1`."""

    id = fields.String()
    created_at = fields.String()
    updated_at = fields.String()
    task_count = fields.Integer()
    status = fields.String(validate=validate.OneOf(("running", "idle")))


class SessionSchema(Schema):
    """`GET /api/sessions/<id>`: the conversation (OpenAI chat messages) and todos."""

    id = fields.String()
    messages = fields.List(fields.Dict())
    todos = fields.List(fields.Dict())
    created_at = fields.String()
    updated_at = fields.String()


task_schema = TaskSchema()
tasks_schema = TaskSchema(many=True)
session_schema = SessionSchema()
session_summaries_schema = SessionSummarySchema(many=True)


# Schemas below describe answers and stream events for the OpenAPI document (alex/openapi_spec.py);
# the views build those bodies themselves, so these only document (and let tests check) their shape.


class ErrorSchema(Schema):
    """The body of every error: a stable code, the HTTP status, a sentence to act on, optional details."""

    code = fields.String(required=True, metadata={"description": "Stable machine word, e.g. `session_busy`."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status of the response."})
    message = fields.String(required=True, metadata={"description": "What went wrong and what to do about it."})
    details = fields.Dict(metadata={"description": "Optional; e.g. the messages of each invalid field (422)."})


class ErrorEnvelopeSchema(Schema):
    """Every error response, whatever its status: `{"error": {code, status, message, details?}}`."""

    error = fields.Nested(ErrorSchema, required=True)


class HealthSchema(Schema):
    """`GET /health` answer."""

    status = fields.String(required=True, validate=validate.Equal("ok"))


class TaskListSchema(Schema):
    """`GET /api/tasks`: one page of tasks, newest first, and how many match in all."""

    tasks = fields.List(fields.Nested(TaskSchema), required=True)
    total = fields.Integer(required=True)


class SessionIdListSchema(Schema):
    """`GET /api/sessions`: one page of session ids, newest first (the Go server's shape)."""

    sessions = fields.List(fields.String(), required=True)
    total = fields.Integer(required=True)


class SessionSummaryListSchema(Schema):
    """`GET /api/sessions?detail=1`: one page of sessions with their status, newest first."""

    sessions = fields.List(fields.Nested(SessionSummarySchema), required=True)
    total = fields.Integer(required=True)


class CancelAcceptedSchema(Schema):
    """`POST /api/tasks/<id>/cancel` answer: the task ends with `task_cancelled` shortly."""

    status = fields.String(required=True, validate=validate.Equal("cancelling"))
    task_id = fields.String(required=True)


def _text(description: str, **kwargs: Any) -> fields.String:
    return fields.String(required=True, metadata={"description": description}, **kwargs)


def _count(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


def _event_type(name: str) -> fields.String:
    return fields.String(required=True, validate=validate.Equal(name), metadata={"description": f"Always `{name}`."})


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


class TaskAnalysisEventSchema(EventSchema):
    """`task_analysis`: what the agent understood the task to be (first event of a task)."""

    event_type = _event_type("task_analysis")
    action_name = _text("A short name for the action.")
    goal = _text("The goal the agent works towards.")


class IterationStartEventSchema(EventSchema):
    """`iteration_start`: an iteration of the agent loop begins."""

    event_type = _event_type("iteration_start")
    iteration = _iteration()
    total_iters = _count("The iteration cap (ALEX_MAX_ITERATIONS).")


class ThinkingEventSchema(EventSchema):
    """`thinking`: the model is being asked for its next step."""

    event_type = _event_type("thinking")
    iteration = _iteration()
    message_count = _count("How many chat messages were sent to the model.")


class ThinkDeltaEventSchema(EventSchema):
    """`think_delta`: a piece of the assistant's text as the model streams it."""

    event_type = _event_type("think_delta")
    iteration = _iteration()
    delta = _text("The next piece of text.")


class ThinkCompleteEventSchema(EventSchema):
    """`think_complete`: the model's reply of this iteration is complete."""

    event_type = _event_type("think_complete")
    iteration = _iteration()
    content = _text("The assistant's text of this iteration (may be empty).")
    tool_call_count = _count("How many tools the model asked to run.")


class ToolCallStartEventSchema(EventSchema):
    """`tool_call_start`: a tool starts running."""

    event_type = _event_type("tool_call_start")
    iteration = _iteration()
    call_id = _text("The tool call's id (links start, stream and complete).")
    tool_name = _text("The tool, e.g. `bash`.")
    arguments = fields.Raw(required=True, metadata={
        "description": "The tool's arguments: a JSON object, or the model's raw text when it was not JSON."})


class ToolCallStreamEventSchema(EventSchema):
    """`tool_call_stream`: live output of a running tool (bash)."""

    event_type = _event_type("tool_call_stream")
    call_id = _text("The tool call's id.")
    tool_name = _text("The tool.")
    chunk = _text("The next piece of output.")
    stream = _text("Which output it came from.", validate=validate.OneOf(("stdout", "stderr")))


class ToolCallCompleteEventSchema(EventSchema):
    """`tool_call_complete`: a tool finished; its result goes back to the model."""

    event_type = _event_type("tool_call_complete")
    call_id = _text("The tool call's id.")
    tool_name = _text("The tool.")
    result = _text("The tool's output (capped at ALEX_TOOL_OUTPUT_LIMIT, head and tail kept).")
    error = _text("Why the tool failed, or null.", allow_none=True)
    duration = _count("How long it ran, in milliseconds.")


class IterationCompleteEventSchema(EventSchema):
    """`iteration_complete`: an iteration of the agent loop ended."""

    event_type = _event_type("iteration_complete")
    iteration = _iteration()
    tokens_used = _count("Tokens the iteration's model call used (from the API's usage).")
    tools_run = _count("How many tools ran.")


class TaskCompleteEventSchema(EventSchema):
    """`task_complete`: the task ended with an answer (terminal)."""

    event_type = _event_type("task_complete")
    final_answer = _text("The agent's answer.")
    total_iterations = _count("Iterations the task took.")
    total_tokens = _count("Tokens the task used in all.")
    stop_reason = _text("Why it stopped.", validate=validate.OneOf(("completed", "max_iterations", "max_tokens")))
    duration = _count("How long the task ran, in milliseconds.")


class TaskCancelledEventSchema(EventSchema):
    """`task_cancelled`: the task was cancelled (terminal)."""

    event_type = _event_type("task_cancelled")
    reason = _text("Who or what cancelled it.")


class ErrorEventSchema(EventSchema):
    """`error`: something failed; terminal when `terminal` is true (then the task ends here)."""

    event_type = _event_type("error")
    iteration = _iteration()
    phase = _text("Where it failed.", validate=validate.OneOf(("llm", "tool", "internal", "shutdown", "worker_lost")))
    error = _text("What went wrong.")
    recoverable = fields.Boolean(required=True, metadata={"description": "The agent carries on after it."})
    terminal = fields.Boolean(required=True, metadata={"description": "The task ends with this event."})
    retryable = fields.Boolean(required=True, metadata={
        "description": "The task ended through no fault of its own: submitting it again is safe."})


# SSE `event:` name -> the schema of its `data:` JSON, in the order a task emits them.
EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "connected": ConnectedEventSchema,
    "task_analysis": TaskAnalysisEventSchema,
    "iteration_start": IterationStartEventSchema,
    "thinking": ThinkingEventSchema,
    "think_delta": ThinkDeltaEventSchema,
    "think_complete": ThinkCompleteEventSchema,
    "tool_call_start": ToolCallStartEventSchema,
    "tool_call_stream": ToolCallStreamEventSchema,
    "tool_call_complete": ToolCallCompleteEventSchema,
    "iteration_complete": IterationCompleteEventSchema,
    "task_complete": TaskCompleteEventSchema,
    "task_cancelled": TaskCancelledEventSchema,
    "error": ErrorEventSchema,
}
