// The HTTP side of the wire contract: JSON envelopes in, ApiError out.
// Authenticated calls get a fresh access token from auth.js and, if the
// server still says TOKEN_EXPIRED (clock skew, a sleeping laptop), renew
// once and retry.

export class ApiError extends Error {
  constructor(status, code, message, details = [], requestId = null, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details ?? [];
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }

  /** What to show a person: the server's words, plus what they can do about it. */
  get plain() {
    // The server's text already names the wait: say it once, plainly.
    if (this.code === 'RATE_LIMITED' && this.retryAfter) return `Too many attempts. Try again in ${this.retryAfter} s.`;
    if (this.status >= 500 && this.requestId) return `${this.message} (reference ${this.requestId})`;
    return this.message;
  }
}

export const API = '/api/v1';

let tokenSource = null;

/** auth.js registers itself: {accessToken(): Promise<string>, renewAfterRejection(): Promise<boolean>} */
export function setTokenSource(source) {
  tokenSource = source;
}

export async function request(method, path, { body, auth = true, headers = {}, signal, retried = false } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (auth) {
    const token = await tokenSource?.accessToken();
    if (!token) throw new ApiError(401, 'UNAUTHENTICATED', 'You are signed out. Sign in again.');
    h.Authorization = `Bearer ${token}`;
  }
  let res;
  try {
    res = await fetch(path.startsWith('/') ? path : `${API}/${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', 'Could not reach the server. Check your connection and try again.');
  }
  if (auth && !retried && res.status === 401) {
    const env = await readJson(res);
    if (env?.error?.code === 'TOKEN_EXPIRED' && (await tokenSource?.renewAfterRejection())) {
      return request(method, path, { body, auth, headers, signal, retried: true });
    }
    throw toError(res, env);
  }
  const env = await readJson(res);
  if (!res.ok || !env || env.success !== true) throw toError(res, env);
  return env.data;
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

export function toError(res, env) {
  const e = env?.error;
  const retryAfter = res.headers?.get?.('Retry-After') ?? null;
  if (e) return new ApiError(res.status, e.code, e.message, e.details, e.requestId, retryAfter);
  return new ApiError(res.status, 'HTTP_' + res.status, `The server answered ${res.status} ${res.statusText || ''}`.trim() + '.', [], res.headers?.get?.('X-Request-Id'), retryAfter);
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body, opts) => request('POST', path, { ...opts, body });
export const patch = (path, body, opts) => request('PATCH', path, { ...opts, body });
export const put = (path, body, opts) => request('PUT', path, { ...opts, body });
export const del = (path, body, opts) => request('DELETE', path, { ...opts, body });

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}
