import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionList } from '../../app/js/lib/pages.js';

const s = (id, title = id) => ({ id, title });

test('pages append without duplicates and record the cursor', () => {
  const l = new SessionList();
  assert.equal(l.hasMore, true);
  l.addPage({ items: [s('a'), s('b')], nextCursor: 'c1' });
  l.addPage({ items: [s('b'), s('c')], nextCursor: null });
  assert.deepEqual(l.items.map((x) => x.id), ['a', 'b', 'c']);
  assert.equal(l.hasMore, false);
});

test('a new session goes on top; a rename stays in place; activity moves to the top', () => {
  const l = new SessionList();
  l.addPage({ items: [s('a'), s('b'), s('c')], nextCursor: null });
  l.upsert(s('n', 'New'));
  assert.deepEqual(l.items.map((x) => x.id), ['n', 'a', 'b', 'c']);
  l.upsert(s('b', 'Renamed'), { toTop: false });
  assert.deepEqual(l.items.map((x) => x.id), ['n', 'a', 'b', 'c']);
  assert.equal(l.get('b').title, 'Renamed');
  assert.equal(l.touch('c', '2026-01-01T00:00:00Z'), true);
  assert.deepEqual(l.items.map((x) => x.id), ['c', 'n', 'a', 'b']);
  assert.equal(l.get('c').lastMessageAt, '2026-01-01T00:00:00Z');
  l.remove('n');
  assert.deepEqual(l.items.map((x) => x.id), ['c', 'a', 'b']);
});
