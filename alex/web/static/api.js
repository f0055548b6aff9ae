// The REST calls the console makes: JSON in and out, the API key (kept in localStorage) as a bearer header.

const KEY_ITEM = "alex.apiKey";

/** A call that failed: the HTTP status (0: no answer) and the error envelope's sentence (or the status's). */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The API key saved on this browser, or "" (a server without keys needs none). */
export function apiKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

/** Keep `key` on this browser (an empty key forgets it). */
export function saveApiKey(key) {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
}

/** `method path` with an optional JSON body; the parsed answer (null when empty), or throws ApiError. */
async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (failure) {
    throw new ApiError(0, `The server cannot be reached (${failure.message}).`);
  }
  const text = await response.text();
  const parsed = parseJson(text);
  if (response.ok) return parsed;
  const error = parsed && parsed.error;
  const status = `${response.status} ${response.statusText}`.trim();
  throw new ApiError(response.status, error ? error.message : `The server answered ${status}.`);
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null; // a proxy's HTML error page, say
  }
}

/** The ids of the caller's sessions with their status, newest first. */
export function listSessions() {
  return call("GET", "/api/sessions?detail=1&limit=50");
}

/** The session's conversation and todos. */
export function getSession(sessionId) {
  return call("GET", `/api/sessions/${encodeURIComponent(sessionId)}`);
}

/** Submit a task (in `sessionId`, or a new session when null); the 202 answer. */
export function submitTask(task, sessionId) {
  return call("POST", "/api/tasks", sessionId ? { task, session_id: sessionId } : { task });
}

/** Ask the server to cancel a task. */
export function cancelTask(taskId) {
  return call("POST", `/api/tasks/${encodeURIComponent(taskId)}/cancel`);
}

/** A fresh stream token for the session (EventSource cannot send the key as a header). */
export async function streamToken(sessionId) {
  const answer = await call("POST", `/api/sessions/${encodeURIComponent(sessionId)}/stream-token`);
  return answer.token;
}
