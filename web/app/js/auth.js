// Who is signed in, and their tokens. The refresh token lives in an
// HttpOnly cookie the server sets when asked (`X-Refresh-Cookie: 1`), out of
// reach of any script on the page; the access token lives only in memory and
// is renewed shortly before it expires, and on every page load.
//
// Refreshes are strictly one at a time: two concurrent refreshes of the
// same token make the server revoke the login (reuse detection). Within a
// tab one promise is shared; across tabs of this origin a Web Lock
// serialises them (the cookie is shared, so each tab refreshes with the
// newest one).

import { ApiError, API, post, get, setTokenSource, toError } from './api.js';
import { TokenClock } from './lib/tokens.js';

const COOKIE_MODE = { 'X-Refresh-Cookie': '1' };

class Auth extends EventTarget {
  constructor() {
    super();
    this.user = null;
    this.accessTokenValue = null;
    /** Only if the server ignored cookie mode and sent the token in the body: memory, never storage. */
    this.bodyRefreshToken = null;
    this.clock = new TokenClock();
    this.timer = null;
    this.inflight = null;
    setTokenSource({
      accessToken: () => this.accessToken(),
      renewAfterRejection: () => this.refresh().then(() => true, () => false),
    });
    // Signing out in one tab signs out the others (they share the cookie).
    this.channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('specgen-auth') : null;
    this.channel?.addEventListener('message', (e) => {
      if (e.data === 'signedout' && this.signedIn) this.#end('You signed out in another tab.', false);
    });
    const wake = () => {
      if (this.accessTokenValue && this.clock.dueForRenewal()) this.refresh().catch(() => {});
    };
    document.addEventListener('visibilitychange', () => { if (!document.hidden) wake(); });
    window.addEventListener('online', wake);
    window.addEventListener('focus', wake);
  }

  get signedIn() {
    return !!this.accessTokenValue;
  }

  /** On page load: a refresh with the cookie says whether we are still signed in. */
  async restore() {
    try {
      await this.refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 0) throw e;
      return false;
    }
    await this.loadMe();
    return true;
  }

  async loadMe() {
    this.user = await get('users/me');
    this.dispatchEvent(new CustomEvent('user', { detail: this.user }));
    return this.user;
  }

  async register({ email, password, name }) {
    const data = await post('auth/register', { email, password, name }, { auth: false, headers: COOKIE_MODE });
    this.#accept(data.tokens);
    await this.loadMe();
    this.dispatchEvent(new Event('signedin'));
  }

  async login({ email, password }) {
    const data = await post('auth/login', { email, password, deviceId: deviceLabel() }, { auth: false, headers: COOKIE_MODE });
    this.#accept(data.tokens);
    await this.loadMe();
    this.dispatchEvent(new Event('signedin'));
  }

  /** A valid access token, renewed first when it is due. */
  async accessToken() {
    if (!this.accessTokenValue) return null;
    if (this.clock.dueForRenewal()) {
      try {
        await this.refresh();
      } catch (e) {
        // Offline: a token that has not expired yet is still worth trying.
        if (!(e instanceof ApiError && e.status === 0) || this.clock.expired()) throw e;
      }
    }
    return this.accessTokenValue;
  }

  refresh() {
    if (!this.inflight) {
      const run = () => this.#doRefresh();
      const locked = navigator.locks?.request ? navigator.locks.request('specgen-refresh', run) : run();
      this.inflight = locked.finally(() => { this.inflight = null; });
    }
    return this.inflight;
  }

  async #doRefresh() {
    let res;
    try {
      res = await fetch(`${API}/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...COOKIE_MODE },
        body: JSON.stringify(this.bodyRefreshToken ? { refreshToken: this.bodyRefreshToken } : {}),
        credentials: 'same-origin',
      });
    } catch {
      throw new ApiError(0, 'NETWORK', 'Could not reach the server to renew your sign-in.');
    }
    const env = await res.json().catch(() => null);
    if (!res.ok || !env?.success) {
      const err = toError(res, env);
      // The server refused the refresh: this login is over (expired,
      // revoked elsewhere, or reused). Rate limits and outages are not.
      if (res.status === 401 || res.status === 422) this.#end(reasonFor(err));
      throw err;
    }
    this.#accept(env.data.tokens);
    return this.accessTokenValue;
  }

  #accept(tokens) {
    this.accessTokenValue = tokens.accessToken;
    if (tokens.refreshToken) this.bodyRefreshToken = tokens.refreshToken;
    this.clock.set(tokens.expiresIn);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), this.clock.msUntilRenewal());
    this.dispatchEvent(new Event('token'));
  }

  #end(reason, tellOtherTabs = true) {
    const was = this.signedIn;
    if (was && tellOtherTabs) this.channel?.postMessage('signedout');
    clearTimeout(this.timer);
    this.accessTokenValue = null;
    this.bodyRefreshToken = null;
    this.user = null;
    this.clock.clear();
    if (was) this.dispatchEvent(new CustomEvent('signedout', { detail: { reason } }));
  }

  /** Sign out here: the server forgets this login and clears the cookie. */
  async logout() {
    try {
      await post('auth/logout', this.bodyRefreshToken ? { refreshToken: this.bodyRefreshToken } : undefined, { headers: COOKIE_MODE });
    } finally {
      this.#end(null);
    }
  }

  /** Sign out everywhere: every login of this account ends, this one included. */
  async logoutAll() {
    await post('auth/logout-all', undefined, { headers: COOKIE_MODE });
    this.#end('You signed out everywhere.');
  }

  /** After the account was deleted, or the server ended the login. */
  forget(reason) {
    this.#end(reason);
  }
}

function reasonFor(err) {
  if (err.code === 'TOKEN_REUSED') return 'You were signed out because this sign-in was used from somewhere else. Sign in again.';
  return 'Your sign-in has ended. Sign in again.';
}

function deviceLabel() {
  const ua = navigator.userAgentData?.platform || navigator.platform || 'browser';
  return `web (${ua})`.slice(0, 128);
}

export const auth = new Auth();
