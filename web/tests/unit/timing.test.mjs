import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renewDelayMs, TokenClock } from '../../app/js/lib/tokens.js';
import { reconnectDelayMs } from '../../app/js/lib/backoff.js';

test('a 15-minute token is renewed 3 minutes early', () => {
  assert.equal(renewDelayMs(900), 720_000);
});

test('short lifetimes renew at least 30 s early but never before half-way', () => {
  assert.equal(renewDelayMs(120), 90_000);
  assert.equal(renewDelayMs(60), 30_000);
  assert.equal(renewDelayMs(10), 5_000);
  assert.equal(renewDelayMs(0), 0);
  assert.equal(renewDelayMs(undefined), 0);
});

test('the clock says when renewal is due and when the token has expired', () => {
  let now = 1_000_000;
  const c = new TokenClock(() => now);
  assert.equal(c.dueForRenewal(), true, 'no token yet');
  c.set(900);
  assert.equal(c.dueForRenewal(), false);
  assert.equal(c.msUntilRenewal(), 720_000);
  now += 720_000;
  assert.equal(c.dueForRenewal(), true);
  assert.equal(c.expired(), false);
  now += 180_000;
  assert.equal(c.expired(), true);
  c.clear();
  assert.equal(c.expired(), true);
});

test('reconnect delays grow, stay capped and are never zero', () => {
  const lo = () => 0;
  const hi = () => 0.999999;
  assert.equal(reconnectDelayMs(0, { random: lo }), 250);
  assert.equal(reconnectDelayMs(1, { random: lo }), 500);
  assert.ok(reconnectDelayMs(3, { random: hi }) <= 4000);
  assert.equal(reconnectDelayMs(30, { random: lo }), 7500);
  assert.ok(reconnectDelayMs(30, { random: hi }) <= 15000);
});
