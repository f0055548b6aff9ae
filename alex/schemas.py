"""marshmallow schemas: request bodies and query strings in, resources out."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_dump, pre_load, validate, validates

from alex.ids import ID_RULE, client_session_id, is_valid_id


class ValidId(validate.Validator):
    """An id as a whole string, by the one rule of alex/ids.py (validate.Regexp would use re.match, whose `$`
    lets a trailing newline through: "nl\\n")."""

    error = ID_RULE

    def __call__(self, value: str) -> str:
        """`value` when it is a valid id, else ValidationError."""
        if not is_valid_id(value):
            raise ValidationError(self.error)
        return value


_ID = ValidId()
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
    last_event_id = fields.String()  # its form depends on the store: checked by the view (400 when malformed)
    access_token = fields.String(load_only=True)


class SocketMessageSchema(Schema):
    """A client message on /api/ws: `type` says what to do, the client's `request_id` comes back on its reply; the
    other fields are the call's (a submit's are the POST /api/tasks body, checked there)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.OneOf(("submit", "cancel")))
    request_id = fields.String(validate=validate.Length(min=1, max=128))


class SocketCancelSchema(StrictSchema):
    """The fields of a `cancel` message on /api/ws (besides `type` and `request_id`)."""

    task_id = fields.String(required=True)


class UsageSchema(Schema):
    """Tokens used by a task, as reported by the LLM API."""

    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()


class TaskSchema(Schema):
    """A task as the API shows it."""

    id = fields.String()
    session_id = fields.Function(lambda task: client_session_id(task["session_id"]))  # the client's own id
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

    id = fields.Function(lambda session: client_session_id(session["id"]))  # the client's own id
    created_at = fields.String()
    updated_at = fields.String()
    task_count = fields.Integer()
    status = fields.String(validate=validate.OneOf(("running", "idle")))


class SessionSchema(Schema):
    """`GET /api/sessions/<id>`: the conversation (OpenAI chat messages) and todos."""

    id = fields.Function(lambda session: client_session_id(session["id"]))  # the client's own id
    messages = fields.List(fields.Dict())
    todos = fields.List(fields.Dict())
    created_at = fields.String()
    updated_at = fields.String()


task_schema = TaskSchema()
tasks_schema = TaskSchema(many=True)
session_schema = SessionSchema()
session_summaries_schema = SessionSummarySchema(many=True)


# Schemas below describe answers for the OpenAPI document (alex/openapi_spec.py); the views build those bodies
# themselves, so these only document (and let tests check) their shape. Stream events: alex/event_schemas.py.


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

