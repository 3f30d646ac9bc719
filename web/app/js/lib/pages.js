// The session list: cursor pages merged without duplicates, kept in "most
// recent activity first" order as sessions are created, renamed or talked in.

export class SessionList {
  constructor() {
    this.items = [];
    this.nextCursor = undefined; // undefined: nothing loaded yet; null: no more pages
    this.version = 0;
  }

  get hasMore() {
    return this.nextCursor !== null;
  }

  /** A page from `GET /chat/sessions`; a session seen already keeps its place. */
  addPage(page) {
    const seen = new Set(this.items.map((s) => s.id));
    for (const s of page.items ?? []) if (!seen.has(s.id)) this.items.push(s);
    this.nextCursor = page.nextCursor ?? null;
    this.version++;
  }

  /** A created or updated session goes to the top when it has new activity. */
  upsert(session, { toTop = true } = {}) {
    const i = this.items.findIndex((s) => s.id === session.id);
    if (i >= 0) {
      const merged = { ...this.items[i], ...session };
      if (toTop) {
        this.items.splice(i, 1);
        this.items.unshift(merged);
      } else {
        this.items[i] = merged;
      }
    } else {
      this.items.unshift(session);
    }
    this.version++;
  }

  /** Activity in a session (a message sent or received) moves it to the top. */
  touch(sessionId, at = new Date().toISOString()) {
    const i = this.items.findIndex((s) => s.id === sessionId);
    if (i < 0) return false;
    const [s] = this.items.splice(i, 1);
    this.items.unshift({ ...s, lastMessageAt: at, updatedAt: at });
    this.version++;
    return true;
  }

  remove(sessionId) {
    const before = this.items.length;
    this.items = this.items.filter((s) => s.id !== sessionId);
    if (this.items.length !== before) this.version++;
  }

  get(sessionId) {
    return this.items.find((s) => s.id === sessionId) ?? null;
  }
}
