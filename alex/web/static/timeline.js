// The live timeline of one session: each domain event becomes one element carrying its id (data-event-id), placed
// where it belongs: thinking text inside its iteration's block, tool output inside its tool call.

import { renderMarkdown } from "./markdown.js";

const TERMINAL = new Set(["task_complete", "task_cancelled"]);

/** True for the event that ends a task. */
export function isTerminal(event) {
  return TERMINAL.has(event.event_type) || (event.event_type === "error" && event.terminal === true);
}

export class Timeline {
  constructor(list) {
    this.list = list;
    this.clear();
  }

  /** Empty the timeline (another session is shown). */
  clear() {
    this.list.replaceChildren();
    this.thoughts = new Map(); // "task iteration" -> the text element of that iteration's thinking
    this.tools = new Map(); // call_id -> the tool call's parts
  }

  /** Show one domain event. */
  add(event) {
    const render = RENDERERS[event.event_type];
    if (!render) return;
    const node = render.call(this, event);
    node.dataset.eventId = event.id;
    node.dataset.eventType = event.event_type;
  }

  item(className, ...children) {
    const entry = el("li", className, ...children);
    this.list.append(entry);
    return entry;
  }

  thought(event) {
    const key = `${event.task_id} ${event.iteration}`;
    if (!this.thoughts.has(key)) {
      const text = el("p", "think-text");
      this.item("thinking", el("h4", "", "Thinking"), text);
      this.thoughts.set(key, text);
    }
    return this.thoughts.get(key);
  }

  tool(event) {
    if (!this.tools.has(event.call_id)) toolCall.call(this, { ...event, arguments: {} });
    return this.tools.get(event.call_id);
  }
}

const RENDERERS = {
  task_analysis(event) {
    return this.item("analysis", el("h3", "", `Task: ${event.action_name}`), el("p", "", `Goal: ${event.goal}`));
  },
  iteration_start(event) {
    return this.item("iteration", el("h3", "", `Iteration ${event.iteration} of ${event.total_iters}`));
  },
  thinking(event) {
    const text = this.thought(event);
    const note = el("span", "meta", `Asking the model (${event.message_count} messages)…`);
    text.before(note);
    return note;
  },
  think_delta(event) {
    const piece = el("span", "", event.delta);
    this.thought(event).append(piece);
    return piece;
  },
  think_complete(event) {
    const text = this.thought(event);
    if (!text.textContent && event.content) text.append(el("span", "", event.content));
    const note = el("span", "meta", event.tool_call_count ? ` → ${event.tool_call_count} tool call(s)` : "");
    text.after(note);
    return note;
  },
  tool_call_start: toolCall,
  tool_call_stream(event) {
    const chunk = el("span", event.stream === "stderr" ? "stderr" : "", event.chunk);
    this.tool(event).output.append(chunk);
    return chunk;
  },
  tool_call_complete(event) {
    const parts = this.tool(event);
    if (!parts.output.textContent && event.result) parts.output.textContent = event.result;
    const outcome = event.error ? `failed after ${event.duration} ms: ${event.error}` : `done in ${event.duration} ms`;
    const done = el("p", event.error ? "meta failed" : "meta", `${event.tool_name} ${outcome}`);
    parts.body.append(done);
    return done;
  },
  iteration_complete(event) {
    const done = `Iteration ${event.iteration} done: ${event.tokens_used} tokens, ${event.tools_run} tool(s)`;
    return this.item("meta", done);
  },
  task_complete(event) {
    const last = this.thoughts.get(`${event.task_id} ${event.total_iterations}`);
    if (last && last.textContent.trim() === event.final_answer.trim()) {
      last.parentElement.classList.add("is-answer"); // its streamed text is the answer below: shown once
    }
    const answer = el("div", "markdown");
    answer.append(renderMarkdown(event.final_answer));
    const seconds = (event.duration / 1000).toFixed(1);
    const totals = `${event.total_iterations} iteration(s), ${event.total_tokens} tokens, ${seconds} s`;
    // The usual stop reason goes without saying; another (max_iterations, repeated_calls …) is named.
    const why = event.stop_reason && event.stop_reason !== "completed" ? ` (${event.stop_reason})` : "";
    const summary = el("p", "meta", `Completed${why}: ${totals}`);
    return this.item("answer", el("h3", "", "Answer"), answer, summary);
  },
  task_cancelled(event) {
    return this.item("cancelled", el("h3", "", "Cancelled"), el("p", "", event.reason));
  },
  error(event) {
    const title = event.terminal ? `Task failed (${event.phase})` : `Error (${event.phase}, the agent carries on)`;
    const retry = event.retryable ? " Submitting the task again is safe." : "";
    const className = event.terminal ? "error terminal" : "error";
    return this.item(className, el("h3", "", title), el("p", "", event.error + retry));
  },
};

function toolCall(event) {
  const args = typeof event.arguments === "string" ? event.arguments : JSON.stringify(event.arguments, null, 2);
  const output = el("pre", "output");
  const body = el("div", "tool-body", el("pre", "arguments", args), output);
  const summary = el("summary", "", el("code", "", event.tool_name), ` ${brief(event.arguments)}`);
  const details = el("details", "", summary, body);
  details.open = true;
  const entry = this.item("tool", details);
  this.tools.set(event.call_id, { output, body });
  return entry;
}

/** One line about a tool call's arguments: bash's command, a path, or the JSON cut short. */
function brief(args) {
  if (typeof args !== "object" || args === null) return String(args).slice(0, 80);
  if (Array.isArray(args.todos)) return `${args.todos.length} todo(s)`;
  const text = args.command ?? args.path ?? args.pattern ?? JSON.stringify(args);
  return String(text).split("\n")[0].slice(0, 80);
}

/** An element with a class; string children become text nodes (never markup). */
export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}
