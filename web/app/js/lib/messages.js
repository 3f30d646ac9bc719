// The messages of one chat session as the client knows them: history pages,
// live events (WebSocket or SSE), optimistic sends, and the bookkeeping that
// lets a reply carry on after a dropped socket or a reload without
// duplicated text. Pure: no DOM, no network; the browser and Node both use it.

export const FINAL = new Set(['complete', 'failed', 'cancelled']);

export class MessageList {
  constructor(sessionId) {
    this.sessionId = sessionId;
    /** Oldest first, in the server's order; pending local sends at the end. */
    this.items = [];
    this.byId = new Map();
    /** messageId -> {lastSeq, buffered: Map<seq, content>} for replies in flight. */
    this.streams = new Map();
    /** Cursor for the next older page; `undefined` before the first page. */
    this.olderCursor = undefined;
    this.hasOlder = true;
    /** Bumped on every change, so views know when to redraw. */
    this.version = 0;
  }

  get length() {
    return this.items.length;
  }

  get(id) {
    return this.byId.get(id);
  }

  indexOf(id) {
    const m = this.byId.get(id);
    return m ? this.items.indexOf(m) : -1;
  }

  /**
   * A page from `GET .../messages` (items oldest first, nextCursor walks
   * back). The first page is the newest; later ones go before what we have.
   * Messages already known (e.g. a live event raced the page) are skipped.
   * Returns how many messages were added at the front.
   */
  addOlderPage(page) {
    const fresh = [];
    for (const raw of page.items ?? []) {
      if (this.byId.has(raw.id)) continue;
      const m = normalise(raw);
      fresh.push(m);
      this.byId.set(m.id, m);
      if (m.role === 'assistant' && m.status === 'streaming') this.#startResumeFromZero(m);
    }
    this.items = fresh.concat(this.items);
    this.olderCursor = page.nextCursor ?? null;
    this.hasOlder = page.nextCursor != null;
    if (fresh.length) this.version++;
    return fresh.length;
  }

  /**
   * A reply that is still streaming in the history has partial text that was
   * written at some point between chunks; we cannot know which seq it ends
   * at, so we drop it and ask the server for every chunk (afterSeq 0).
   */
  #startResumeFromZero(m) {
    m.content = '';
    m.rev++;
    this.streams.set(m.id, { lastSeq: 0, buffered: new Map() });
  }

  /**
   * The newest page fetched again after a reconnect: messages created while
   * we were away are added, stored copies confirm optimistic sends, replies
   * that ended meanwhile take their final state. Returns whether the page
   * overlapped what we had; if not (more than a page was missed) and older
   * messages exist, the caller should start over from this page.
   */
  mergeNewest(page) {
    const items = page.items ?? [];
    let overlap = this.items.length === 0 || page.nextCursor == null;
    let added = 0;
    for (const raw of items) {
      if (this.byId.has(raw.id)) {
        overlap = true;
        this.applySnapshot(raw);
        continue;
      }
      const pending = raw.clientMessageId && raw.role === 'user' ? this.byId.get(`pending:${raw.clientMessageId}`) : null;
      const m = normalise(raw);
      if (pending) {
        this.byId.delete(pending.id);
        this.items[this.items.indexOf(pending)] = m;
      } else {
        this.items.push(m);
        added++;
      }
      this.byId.set(m.id, m);
      if (m.role === 'assistant' && m.status === 'streaming') this.#startResumeFromZero(m);
    }
    if (added) {
      // Put what arrived late in time order; unconfirmed sends stay last.
      const key = (m) => (m.pending ? Infinity : Date.parse(m.createdAt) || 0);
      this.items = this.items.map((m, i) => [m, i]).sort((a, b) => key(a[0]) - key(b[0]) || a[1] - b[1]).map(([m]) => m);
    }
    this.version++;
    return { added, overlap };
  }

  /** Forget everything (a reconnect after missing more than a page). */
  reset() {
    this.items = [];
    this.byId.clear();
    this.streams.clear();
    this.olderCursor = undefined;
    this.hasOlder = true;
    this.version++;
  }

  /** An optimistic user message shown before the server confirms it. */
  addPending({ clientMessageId, content, senderId, createdAt }) {
    const m = normalise({
      id: `pending:${clientMessageId}`,
      sessionId: this.sessionId,
      senderId,
      role: 'user',
      content,
      status: 'complete',
      clientMessageId,
      createdAt: createdAt ?? new Date().toISOString(),
    });
    m.pending = true;
    this.items.push(m);
    this.byId.set(m.id, m);
    this.version++;
    return m;
  }

  /** The send failed before the server stored anything: mark it so the user can retry. */
  failPending(clientMessageId, reason) {
    const m = this.byId.get(`pending:${clientMessageId}`);
    if (!m) return null;
    m.sendError = reason;
    m.rev++;
    this.version++;
    return m;
  }

  removePending(clientMessageId) {
    const m = this.byId.get(`pending:${clientMessageId}`);
    if (!m) return;
    this.byId.delete(m.id);
    this.items.splice(this.items.indexOf(m), 1);
    this.version++;
  }

  /** `message_created`: a user message, or an AI reply starting (status streaming). */
  applyCreated(raw) {
    if (raw.sessionId && raw.sessionId !== this.sessionId) return null;
    const known = this.byId.get(raw.id);
    if (known) {
      // A replay (SSE and WebSocket both delivering, or a resume) must not
      // wind a message back: keep text and final states we already have.
      if (!FINAL.has(known.status) && FINAL.has(raw.status)) this.#finish(known, raw.status, raw);
      return known;
    }
    const m = normalise(raw);
    const pending = raw.clientMessageId && raw.role === 'user' ? this.byId.get(`pending:${raw.clientMessageId}`) : null;
    if (pending) {
      this.byId.delete(pending.id);
      this.items[this.items.indexOf(pending)] = m;
    } else {
      this.items.push(m);
    }
    this.byId.set(m.id, m);
    if (m.role === 'assistant' && m.status === 'streaming' && !this.streams.has(m.id)) {
      // Text in a created event precedes seq 1 only if the server sent some;
      // it sends "" today, and chunks carry everything.
      this.streams.set(m.id, { lastSeq: 0, buffered: new Map() });
      m.content = '';
    }
    this.version++;
    return m;
  }

  /**
   * `message_chunk`. Chunks are applied strictly in seq order: a repeat
   * (seq <= last applied) is ignored, a chunk from the future is held until
   * the gap fills. Returns 'applied', 'duplicate', 'buffered' or 'ignored'.
   */
  applyChunk({ messageId, sessionId, seq, content, timestamp }) {
    if (sessionId && sessionId !== this.sessionId) return 'ignored';
    let m = this.byId.get(messageId);
    if (!m) {
      // We missed message_created (joined mid-reply): show the reply anyway.
      m = normalise({ id: messageId, sessionId: this.sessionId, senderId: null, role: 'assistant', content: '', status: 'streaming', createdAt: timestamp });
      this.items.push(m);
      this.byId.set(m.id, m);
    }
    if (FINAL.has(m.status)) return 'ignored';
    let s = this.streams.get(messageId);
    if (!s) {
      s = { lastSeq: 0, buffered: new Map() };
      this.streams.set(messageId, s);
    }
    if (!Number.isInteger(seq) || seq <= s.lastSeq) return 'duplicate';
    if (seq > s.lastSeq + 1) {
      s.buffered.set(seq, content);
      return 'buffered';
    }
    if (s.snapshot) {
      // Text from a polled snapshot stands in until real chunks arrive; it
      // is replaced, never appended to, so nothing is shown twice.
      m.content = '';
      s.snapshot = false;
    }
    m.content += content;
    s.lastSeq = seq;
    while (s.buffered.has(s.lastSeq + 1)) {
      const next = s.lastSeq + 1;
      m.content += s.buffered.get(next);
      s.buffered.delete(next);
      s.lastSeq = next;
    }
    m.rev++;
    this.version++;
    return 'applied';
  }

  /** `message_complete` / `message_failed` / `message_cancelled`: the text they carry is the whole reply. */
  applyFinal(kind, data) {
    if (data.sessionId && data.sessionId !== this.sessionId) return null;
    const status = { message_complete: 'complete', message_failed: 'failed', message_cancelled: 'cancelled' }[kind];
    if (!status) throw new Error(`not a final event: ${kind}`);
    let m = this.byId.get(data.messageId);
    if (!m) {
      m = normalise({ id: data.messageId, sessionId: this.sessionId, senderId: null, role: 'assistant', content: '', status: 'streaming', createdAt: data.timestamp });
      this.items.push(m);
      this.byId.set(m.id, m);
    }
    if (FINAL.has(m.status)) return m;
    this.#finish(m, status, data);
    return m;
  }

  #finish(m, status, data) {
    m.status = status;
    if (typeof data.content === 'string') m.content = data.content;
    if (data.error !== undefined) m.error = data.error;
    if (data.provider !== undefined) m.provider = data.provider;
    if (data.model !== undefined) m.model = data.model;
    if (data.usage !== undefined) m.usage = data.usage;
    this.streams.delete(m.id);
    m.rev++;
    this.version++;
  }

  /**
   * A stored copy of a message fetched over HTTP (the fallback while no live
   * channel is up). A final state wins; a streaming one only shows its
   * partial text, which the first real chunk replaces.
   */
  applySnapshot(raw) {
    const m = this.byId.get(raw.id);
    if (!m || FINAL.has(m.status)) return m ?? null;
    if (FINAL.has(raw.status)) {
      this.#finish(m, raw.status, raw);
      return m;
    }
    const s = this.streams.get(m.id);
    if (s && s.lastSeq === 0 && raw.content !== m.content) {
      m.content = raw.content ?? '';
      s.snapshot = true;
      m.rev++;
      this.version++;
    }
    return m;
  }

  /** Replies in flight, each with the last seq applied: what to `resume` after a reconnect. */
  resumeRequests() {
    const out = [];
    for (const [messageId, s] of this.streams) {
      const m = this.byId.get(messageId);
      if (m && !FINAL.has(m.status)) out.push({ sessionId: this.sessionId, messageId, afterSeq: s.lastSeq });
    }
    return out;
  }

  /** A reply in flight, if any (the stop button targets it). */
  streamingReply() {
    for (let i = this.items.length - 1; i >= 0; i--) {
      const m = this.items[i];
      if (m.role === 'assistant' && m.status === 'streaming') return m;
    }
    return null;
  }

  /** The user message a failed reply answered: the nearest user message before it. */
  promptFor(messageId) {
    const i = this.indexOf(messageId);
    for (let j = i - 1; j >= 0; j--) if (this.items[j].role === 'user') return this.items[j];
    return null;
  }
}

function normalise(raw) {
  return {
    id: raw.id,
    sessionId: raw.sessionId,
    senderId: raw.senderId ?? null,
    role: raw.role ?? 'user',
    content: raw.content ?? '',
    status: raw.status ?? 'complete',
    provider: raw.provider ?? null,
    model: raw.model ?? null,
    usage: raw.usage ?? null,
    error: raw.error ?? null,
    clientMessageId: raw.clientMessageId ?? null,
    createdAt: raw.createdAt ?? new Date().toISOString(),
    /** Render revision: bumped whenever what is shown changes. */
    rev: 0,
  };
}
