"""Session endpoints: list, get, delete, and stream tokens."""

from __future__ import annotations

from flask import Blueprint

from alex.api.inputs import path_id, query_args
from alex.api.owner import current_owner, find_session, take_session
from alex.api.replies import no_content
from alex.api.stopping import stop_task
from alex.ids import client_session_id
from alex.schemas import SessionListQuerySchema, session_schema, session_summaries_schema
from alex.security.auth import issue_stream_token
from alex.services import services
from alex.workspace import remove_workspace

bp = Blueprint("sessions", __name__, url_prefix="/api/sessions")
_session_list_query = SessionListQuerySchema()
CANCEL_WAIT_S = 10.0  # how long a delete waits for the running task to deliver its terminal event


@bp.get("")
def list_sessions():
    """Session ids newest first (the Go server's shape); `detail=1` gives objects with status."""
    args = query_args(_session_list_query)
    sessions, total = services().store.list_sessions(current_owner(), args["limit"], args["offset"])
    if args["detail"]:
        return {"sessions": session_summaries_schema.dump(sessions), "total": total}
    return {"sessions": [client_session_id(session["id"]) for session in sessions], "total": total}


@bp.get("/<session_id>")
def get_session(session_id: str):
    """The session's conversation and todos."""
    return session_schema.dump(find_session(path_id(session_id, "session")))


@bp.post("/<session_id>/stream-token")
def create_stream_token(session_id: str):
    """`{"token", "expires_in"}` for `GET /api/sse?session_id=<id>&access_token=<token>` (EventSource sends no
    headers); the session is created when first named, like a stream or a task would."""
    take_session(path_id(session_id, "session"))
    return issue_stream_token(session_id), 200, {"Cache-Control": "no-store"}  # the client's id, as it will ask


@bp.delete("/<session_id>")
def delete_session(session_id: str):
    """Close the session to new tasks, cancel its task, end its streams, delete its data and workspace."""
    svc = services()
    session = find_session(path_id(session_id, "session"))
    svc.store.mark_session_closing(session["id"])
    task = svc.store.active_task(session["id"])
    if task is not None:
        stop_task(svc, task, "session deleted", wait_s=CANCEL_WAIT_S)
    svc.broadcaster.close_session(session["id"])
    svc.store.delete_session(session["id"])
    remove_workspace(svc.config.workspace_root, session["id"])
    return no_content()
