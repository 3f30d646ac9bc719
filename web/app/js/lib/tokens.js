// When to renew the access token. The server says how long it lives
// (`expiresIn`, seconds); we renew well before the end so a request never
// goes out with a token that expires in flight, and so a laptop waking from
// sleep (timers paused) renews before its next call.

/** Milliseconds after issue at which to renew a token living `expiresIn` seconds. */
export function renewDelayMs(expiresIn) {
  const life = Math.max(0, Number(expiresIn) || 0);
  // 80% of the life, but at least 30 s early; never sooner than half-way
  // (short test lifetimes still get a useful token).
  const at = Math.max(Math.min(life * 0.8, life - 30), life * 0.5);
  return Math.round(at * 1000);
}

export class TokenClock {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.issuedAt = 0;
    this.expiresAt = 0;
    this.renewAt = 0;
  }

  set(expiresIn) {
    this.issuedAt = this.now();
    this.expiresAt = this.issuedAt + Math.max(0, Number(expiresIn) || 0) * 1000;
    this.renewAt = this.issuedAt + renewDelayMs(expiresIn);
  }

  clear() {
    this.issuedAt = this.expiresAt = this.renewAt = 0;
  }

  /** Time left before renewal is due (0 when due now). */
  msUntilRenewal() {
    return Math.max(0, this.renewAt - this.now());
  }

  /** Past the renewal point (or no token at all): renew before using it. */
  dueForRenewal() {
    return this.expiresAt === 0 || this.now() >= this.renewAt;
  }

  expired() {
    return this.expiresAt === 0 || this.now() >= this.expiresAt;
  }
}
