// The console page: the session list, the task box, the key form and the live timeline of the chosen session.

import { apiKey, cancelTask, getSession, listSessions, saveApiKey, submitTask } from "./api.js";
import { LiveStream } from "./stream.js";
import { Timeline, el, isTerminal } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const timeline = new Timeline($("timeline"));
const stream = new LiveStream({ onEvent: showEvent, onState: showState, onAuthNeeded: askForKey });
let sessionId = null; // the session shown, null before the first task of a new one
let runningTaskId = null;

function showEvent(event) {
  $("empty-timeline").hidden = true;
  timeline.add(event);
  setRunning(isTerminal(event) ? null : event.task_id);
  if (isTerminal(event)) refreshSessions();
  if (event.event_type === "tool_call_complete" && event.tool_name === "todo_write") refreshTodos();
}

const STATE_TEXT = {
  connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting", closed: "Not streaming", gone: "Gone",
};

function showState(state, detail) {
  if (state === "gone") refreshSessions();
  const status = $("stream-state");
  status.dataset.state = state;
  status.textContent = sessionId ? `${STATE_TEXT[state]}${detail ? `: ${detail}` : ""}` : "No session selected";
}

function askForKey(error) {
  showNotice(`${error.message} Enter the API key above.`);
  showState("closed", "the server needs an API key");
  $("key-panel").open = true;
  $("key-input").focus();
}

function showNotice(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function report(error) {
  if (error.status === 401) askForKey(error);
  else showNotice(error.message);
}

function setRunning(taskId) {
  runningTaskId = taskId;
  $("cancel").disabled = !taskId;
}

/** Show `id` (its whole history, then live), or nothing for a new session when `id` is null. */
function show(id) {
  sessionId = id;
  timeline.clear();
  setRunning(null);
  $("empty-timeline").hidden = false;
  $("task-label").textContent = id ? `Task for session ${id}` : "Task for a new session";
  history.replaceState(null, "", id ? `#session=${encodeURIComponent(id)}` : location.pathname);
  markSelected();
  refreshTodos();
  if (id) stream.open(id);
  else stream.close();
}

async function refreshSessions() {
  try {
    const { sessions } = await listSessions();
    $("session-list").replaceChildren(...sessions.map(sessionItem));
    $("no-sessions").hidden = sessions.length > 0;
    markSelected();
  } catch (error) {
    report(error);
  }
}

function sessionItem(session) {
  const button = el("button", "session", el("span", "session-id", session.id),
    el("span", "meta", `${session.status} · ${session.task_count} task(s)`));
  button.type = "button";
  button.dataset.sessionId = session.id;
  button.addEventListener("click", () => show(session.id));
  return el("li", "", button);
}

function markSelected() {
  for (const button of document.querySelectorAll("#session-list button")) {
    if (button.dataset.sessionId === sessionId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

async function refreshTodos() {
  const todos = sessionId ? await getSession(sessionId).then((session) => session.todos, () => []) : [];
  $("todo-list").replaceChildren(...todos.map((todo) => el("li", `todo ${todo.status}`,
    el("span", "meta", todo.status.replace("_", " ")), " ", el("span", "todo-content", todo.content))));
  $("todos").hidden = todos.length === 0;
}

async function runTask(event) {
  event.preventDefault();
  const task = $("task-input").value.trim();
  if (!task) return;
  try {
    const accepted = await submitTask(task, sessionId);
    showNotice("");
    $("task-input").value = "";
    if (accepted.session_id !== sessionId) show(accepted.session_id);
    setRunning(accepted.task_id);
    refreshSessions();
  } catch (error) {
    report(error);
  }
}

async function cancelRunning() {
  try {
    await cancelTask(runningTaskId);
  } catch (error) {
    report(error);
  }
}

function saveKey(event) {
  event.preventDefault();
  saveApiKey($("key-input").value.trim());
  $("key-input").value = "";
  $("key-panel").open = false;
  showNotice("");
  keyState();
  refreshSessions();
  show(sessionId);
}

function keyState() {
  $("key-panel").querySelector("summary").textContent = apiKey() ? "API key (saved)" : "API key";
}

$("task-form").addEventListener("submit", runTask);
$("task-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("task-form").requestSubmit();
});
$("cancel").addEventListener("click", cancelRunning);
$("new-session").addEventListener("click", () => show(null));
$("key-form").addEventListener("submit", saveKey);
keyState();
show(new URLSearchParams(location.hash.slice(1)).get("session"));
refreshSessions();
