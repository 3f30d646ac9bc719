// The live channel: one WebSocket to `/ws` per tab. It authenticates with
// the first frame (browsers cannot set headers on the upgrade), rejoins the
// sessions we had joined after every reconnect, and tells listeners when it
// is ready so they can fetch what they missed and `resume` replies in flight.
// Server events are re-dispatched as DOM events named like the wire events.

import { auth } from './auth.js';
import { reconnectDelayMs } from './lib/backoff.js';
import { newId } from './lib/ids.js';

const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;

class Gateway extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.state = 'idle'; // idle | connecting | open | waiting (to reconnect)
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.joined = new Set(); // sessions we want to be in
    this.confirmed = new Set(); // sessions the server confirmed for this socket
    this.wanted = false;
    window.addEventListener('online', () => { if (this.wanted && this.state === 'waiting') this.#connectNow(); });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.wanted && this.state === 'waiting') this.#connectNow();
    });
  }

  get isOpen() {
    return this.state === 'open' && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Joined and confirmed on the current socket: safe to send session frames. */
  isLive(sessionId) {
    return this.isOpen && this.confirmed.has(sessionId);
  }

  start() {
    this.wanted = true;
    if (this.state === 'idle' || this.state === 'waiting') this.#connectNow();
  }

  stop() {
    this.wanted = false;
    this.joined.clear();
    this.confirmed.clear();
    clearTimeout(this.retryTimer);
    this.#stopPing();
    const ws = this.ws;
    this.ws = null;
    this.#setState('idle');
    if (ws) ws.close(1000, 'signed out');
  }

  join(sessionId) {
    this.joined.add(sessionId);
    if (this.isOpen) this.send('join_session', { sessionId });
  }

  leave(sessionId) {
    this.joined.delete(sessionId);
    this.confirmed.delete(sessionId);
    if (this.isOpen) this.send('leave_session', { sessionId });
  }

  /** Sends a frame; false when there is no open, authenticated socket. */
  send(event, data, id = newId()) {
    if (!this.isOpen) return false;
    try {
      this.ws.send(JSON.stringify({ event, data, id }));
      return true;
    } catch {
      return false;
    }
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('status', { detail: state }));
  }

  async #connectNow() {
    clearTimeout(this.retryTimer);
    if (!this.wanted || this.state === 'connecting' || this.state === 'open') return;
    this.#setState('connecting');
    let token;
    try {
      token = await auth.accessToken();
    } catch {
      token = null;
    }
    if (!this.wanted) return;
    if (!token) {
      this.#scheduleRetry();
      return;
    }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws`);
    } catch {
      this.#scheduleRetry();
      return;
    }
    this.ws = ws;
    this.confirmed.clear();
    ws.onopen = () => {
      ws.send(JSON.stringify({ event: 'authenticate', data: { token }, id: newId() }));
    };
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.#onFrame(frame);
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.confirmed.clear();
      this.#stopPing();
      this.dispatchEvent(new CustomEvent('closed', { detail: { code: e.code, reason: e.reason } }));
      if (!this.wanted) {
        this.#setState('idle');
        return;
      }
      if (e.code === 4401) {
        // The token was refused: renew it before trying again.
        auth.refresh().catch(() => {});
      }
      this.#scheduleRetry();
    };
    ws.onerror = () => {};
  }

  #scheduleRetry() {
    this.#setState('waiting');
    const delay = reconnectDelayMs(this.attempt++);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#connectNow(), delay);
  }

  #onFrame(frame) {
    const { event, data = {}, id } = frame ?? {};
    if (event === 'connected') {
      this.attempt = 0;
      this.#setState('open');
      this.#startPing();
      for (const sessionId of this.joined) this.send('join_session', { sessionId });
      this.dispatchEvent(new CustomEvent('ready', { detail: data }));
      return;
    }
    if (event === 'pong') {
      clearTimeout(this.pongTimer);
      return;
    }
    if (event === 'joined_session') this.confirmed.add(data.sessionId);
    if (event === 'left_session') this.confirmed.delete(data.sessionId);
    if (event === 'error' && data.code === 'UNAUTHENTICATED' && this.state !== 'open') {
      auth.refresh().catch(() => {});
    }
    this.dispatchEvent(new CustomEvent(event, { detail: { data, id } }));
  }

  #startPing() {
    this.#stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.send('ping', {})) return;
      clearTimeout(this.pongTimer);
      // No pong: the connection is half-open (sleep, network change). Drop it and reconnect.
      this.pongTimer = setTimeout(() => this.ws?.close(4000, 'no pong'), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  #stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}

export const gateway = new Gateway();
