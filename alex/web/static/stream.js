// One live stream per page: an EventSource on /api/sse that survives what real browsers do to it.
//
// EventSource reconnects by itself after a dropped connection (sending Last-Event-ID), but gives up for good after
// any answer other than 200 (a proxy's 502 during a deploy, a 401 once its token expired, a 429). So when it is
// CLOSED, the page opens a new one itself: a fresh stream token, `?last_event_id=` the last id it showed, after a
// growing delay. Ids already shown are skipped, so a replay that overlaps never shows an event twice.

import { getSession, streamToken } from "./api.js";

const EVENT_TYPES = [
  "task_analysis", "iteration_start", "thinking", "think_delta", "think_complete", "tool_call_start",
  "tool_call_stream", "tool_call_complete", "iteration_complete", "task_complete", "task_cancelled", "error",
];
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15000;

export class LiveStream {
  /**
   * onEvent(event): each domain event once, parsed, in order.
   * onState(state, detail): "connecting", "live", "reconnecting" (detail says why and when), "closed" or "gone"
   * (the session was deleted: no more retries).
   * onAuthNeeded(error): the server wants an API key this page does not have (retries stop until `open`).
   */
  constructor({ onEvent, onState, onAuthNeeded }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onAuthNeeded = onAuthNeeded;
    this.source = null;
    this.timer = null;
    this.generation = 0; // bumped on every open/close: callbacks of an older stream do nothing
  }

  /** Show `sessionId` from its first event on (closing the stream this page had). */
  open(sessionId) {
    this.close();
    this.sessionId = sessionId;
    this.lastId = "0";
    this.seen = new Set();
    this.failures = 0;
    this.connect("connecting", "");
  }

  /** Stop streaming and forget any planned reconnect. */
  close() {
    this.generation += 1;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
    this.onState("closed", "");
  }

  async connect(state, why) {
    const generation = this.generation;
    this.onState(state, why);
    let token;
    try {
      // A session deleted meanwhile answers 404 here; asking for a token first would make it anew, empty.
      if (state === "reconnecting") await getSession(this.sessionId);
      token = await streamToken(this.sessionId);
    } catch (error) {
      if (generation !== this.generation) return;
      if (error.status === 401) return this.onAuthNeeded(error);
      if (error.status === 404) return this.onState("gone", "the session was deleted");
      return this.retry(`the stream token request failed: ${error.message}`);
    }
    if (generation !== this.generation) return;
    const query = new URLSearchParams({ session_id: this.sessionId, last_event_id: this.lastId, access_token: token });
    const source = new EventSource(`/api/sse?${query}`);
    this.source = source;
    source.addEventListener("connected", () => {
      this.failures = 0;
      this.onState("live", "");
    });
    for (const type of EVENT_TYPES) source.addEventListener(type, (message) => this.receive(message));
    // The domain event named `error` is a MessageEvent with data (handled above); the connection's own error is
    // a plain Event: EventSource either reconnects by itself (CONNECTING) or has given up (CLOSED).
    source.addEventListener("error", (event) => {
      if (event instanceof MessageEvent || generation !== this.generation) return;
      if (source.readyState === EventSource.CLOSED) this.retry("the stream was refused or ended");
      else this.onState("reconnecting", "the connection dropped; the browser is reconnecting");
    });
  }

  receive(message) {
    if (!message.data || this.seen.has(message.lastEventId)) return;
    this.seen.add(message.lastEventId);
    this.lastId = message.lastEventId;
    this.onEvent(JSON.parse(message.data));
  }

  retry(why) {
    if (this.source) this.source.close();
    this.source = null;
    // ±20 % jitter: the pages a deploy cut off do not all come back in the same second
    const delay = Math.min(FIRST_DELAY_MS * 2 ** this.failures, MAX_DELAY_MS) * (0.8 + 0.4 * Math.random());
    this.failures += 1;
    const seconds = Math.round(delay / 1000);
    this.onState("reconnecting", `${why}; reconnecting in ${seconds} s`);
    const generation = this.generation;
    this.timer = setTimeout(() => {
      if (generation === this.generation) this.connect("reconnecting", why);
    }, delay);
  }
}
