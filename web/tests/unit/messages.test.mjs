import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageList } from '../../app/js/lib/messages.js';

const S = 'sess-1';
const user = (id, content, extra = {}) => ({ id, sessionId: S, senderId: 'u1', role: 'user', content, status: 'complete', createdAt: '2026-01-01T00:00:00Z', ...extra });
const ai = (id, status = 'streaming', content = '', extra = {}) => ({ id, sessionId: S, senderId: null, role: 'assistant', content, status, createdAt: '2026-01-01T00:00:01Z', ...extra });
const chunk = (messageId, seq, content) => ({ messageId, sessionId: S, seq, content, isComplete: false });

test('chunks concatenate in seq order; repeats are ignored', () => {
  const l = new MessageList(S);
  l.applyCreated(ai('a1'));
  assert.equal(l.applyChunk(chunk('a1', 1, 'Hello ')), 'applied');
  assert.equal(l.applyChunk(chunk('a1', 2, 'world')), 'applied');
  assert.equal(l.applyChunk(chunk('a1', 1, 'Hello ')), 'duplicate');
  assert.equal(l.applyChunk(chunk('a1', 2, 'world')), 'duplicate');
  assert.equal(l.get('a1').content, 'Hello world');
});

test('a chunk ahead of a gap waits until the gap fills', () => {
  const l = new MessageList(S);
  l.applyCreated(ai('a1'));
  l.applyChunk(chunk('a1', 1, 'a'));
  assert.equal(l.applyChunk(chunk('a1', 3, 'c')), 'buffered');
  assert.equal(l.get('a1').content, 'a');
  assert.equal(l.applyChunk(chunk('a1', 2, 'b')), 'applied');
  assert.equal(l.get('a1').content, 'abc');
  assert.deepEqual(l.resumeRequests(), [{ sessionId: S, messageId: 'a1', afterSeq: 3 }]);
});

test('resume after a reconnect replays overlapping chunks without duplicating text', () => {
  const l = new MessageList(S);
  l.applyCreated(ai('a1'));
  for (const [i, w] of ['one ', 'two ', 'three '].entries()) l.applyChunk(chunk('a1', i + 1, w));
  const [req] = l.resumeRequests();
  assert.equal(req.afterSeq, 3);
  // The server may resend from any earlier point; only new seqs count.
  for (const [i, w] of ['one ', 'two ', 'three ', 'four'].entries()) l.applyChunk(chunk('a1', i + 1, w));
  assert.equal(l.get('a1').content, 'one two three four');
});

test('a reply still streaming in the history is cleared and resumed from seq 0', () => {
  const l = new MessageList(S);
  l.addOlderPage({ items: [user('m1', 'hi'), ai('a1', 'streaming', 'partial te')], nextCursor: null });
  assert.equal(l.get('a1').content, '');
  assert.deepEqual(l.resumeRequests(), [{ sessionId: S, messageId: 'a1', afterSeq: 0 }]);
  l.applyChunk(chunk('a1', 1, 'partial '));
  l.applyChunk(chunk('a1', 2, 'text'));
  assert.equal(l.get('a1').content, 'partial text');
});

test('a polled snapshot is replaced by the first real chunk, not appended to', () => {
  const l = new MessageList(S);
  l.addOlderPage({ items: [ai('a1', 'streaming', 'par')], nextCursor: null });
  l.applySnapshot(ai('a1', 'streaming', 'partial'));
  assert.equal(l.get('a1').content, 'partial');
  l.applyChunk(chunk('a1', 1, 'partial '));
  assert.equal(l.get('a1').content, 'partial ');
  l.applySnapshot(ai('a1', 'complete', 'partial text'));
  assert.equal(l.get('a1').status, 'complete');
  assert.equal(l.get('a1').content, 'partial text');
});

test('the final event carries the whole text and ends the stream; later chunks are ignored', () => {
  const l = new MessageList(S);
  l.applyCreated(ai('a1'));
  l.applyChunk(chunk('a1', 1, 'Hel'));
  l.applyFinal('message_complete', { messageId: 'a1', sessionId: S, content: 'Hello', provider: 'demo', model: 'demo', usage: { inputTokens: 1, outputTokens: 1 } });
  assert.equal(l.get('a1').status, 'complete');
  assert.equal(l.get('a1').content, 'Hello');
  assert.equal(l.applyChunk(chunk('a1', 2, 'lo')), 'ignored');
  assert.deepEqual(l.resumeRequests(), []);
  // A second final event (SSE and WebSocket both) changes nothing.
  l.applyFinal('message_cancelled', { messageId: 'a1', sessionId: S, content: 'Hel' });
  assert.equal(l.get('a1').status, 'complete');
});

test('a failed reply keeps its partial text and its error', () => {
  const l = new MessageList(S);
  l.applyCreated(user('m1', 'question'));
  l.applyCreated(ai('a1'));
  l.applyChunk(chunk('a1', 1, 'part'));
  l.applyFinal('message_failed', { messageId: 'a1', sessionId: S, content: 'part', error: { code: 'AI_STREAM_FAILED', message: 'The provider stopped' } });
  const m = l.get('a1');
  assert.equal(m.status, 'failed');
  assert.equal(m.error.message, 'The provider stopped');
  assert.equal(l.promptFor('a1').id, 'm1');
});

test('an optimistic send is replaced in place by the stored message', () => {
  const l = new MessageList(S);
  l.addPending({ clientMessageId: 'c1', content: 'a < b', senderId: 'u1' });
  assert.equal(l.items[0].pending, true);
  l.applyCreated(user('m1', 'a < b', { clientMessageId: 'c1' }));
  assert.equal(l.length, 1);
  assert.equal(l.items[0].id, 'm1');
  assert.equal(l.items[0].content, 'a < b');
  assert.equal(l.get('pending:c1'), undefined);
});

test('the same message created twice (two channels) appears once', () => {
  const l = new MessageList(S);
  l.applyCreated(user('m1', 'x'));
  l.applyCreated(user('m1', 'x'));
  l.applyCreated(ai('a1'));
  l.applyCreated(ai('a1'));
  assert.deepEqual(l.items.map((m) => m.id), ['m1', 'a1']);
});

test('older pages go in front, skip known messages and track the cursor', () => {
  const l = new MessageList(S);
  assert.equal(l.addOlderPage({ items: [user('m3', 'c'), user('m4', 'd')], nextCursor: 'k1' }), 2);
  assert.equal(l.hasOlder, true);
  assert.equal(l.olderCursor, 'k1');
  assert.equal(l.addOlderPage({ items: [user('m1', 'a'), user('m2', 'b'), user('m3', 'c')], nextCursor: null }), 2);
  assert.deepEqual(l.items.map((m) => m.id), ['m1', 'm2', 'm3', 'm4']);
  assert.equal(l.hasOlder, false);
});

test('chunks for a reply we never saw created still show up', () => {
  const l = new MessageList(S);
  l.applyChunk(chunk('a9', 1, 'late '));
  l.applyChunk(chunk('a9', 2, 'joiner'));
  assert.equal(l.get('a9').content, 'late joiner');
  assert.equal(l.streamingReply().id, 'a9');
});

test('events of another session are ignored', () => {
  const l = new MessageList(S);
  assert.equal(l.applyCreated({ ...user('x', 'y'), sessionId: 'other' }), null);
  assert.equal(l.applyChunk({ ...chunk('a1', 1, 'z'), sessionId: 'other' }), 'ignored');
  assert.equal(l.length, 0);
});

test('a failed optimistic send is marked for retry and can be removed', () => {
  const l = new MessageList(S);
  l.addPending({ clientMessageId: 'c1', content: 'hi', senderId: 'u1' });
  l.failPending('c1', 'offline');
  assert.equal(l.get('pending:c1').sendError, 'offline');
  l.removePending('c1');
  assert.equal(l.length, 0);
});

test('after a reconnect the newest page adds what was missed, confirms sends and finishes replies', () => {
  const l = new MessageList(S);
  l.addOlderPage({ items: [user('m1', 'hi', { createdAt: '2026-01-01T00:00:00Z' })], nextCursor: null });
  l.applyCreated(ai('a1', 'streaming', '', { createdAt: '2026-01-01T00:00:01Z' }));
  l.applyChunk(chunk('a1', 1, 'Hel'));
  l.addPending({ clientMessageId: 'c1', content: 'sent while offline', senderId: 'u1' });
  const r = l.mergeNewest({
    items: [
      user('m1', 'hi', { createdAt: '2026-01-01T00:00:00Z' }),
      ai('a1', 'complete', 'Hello', { createdAt: '2026-01-01T00:00:01Z' }),
      user('m2', 'from a colleague', { senderId: 'u2', createdAt: '2026-01-01T00:00:02Z' }),
      user('m3', 'sent while offline', { clientMessageId: 'c1', createdAt: '2026-01-01T00:00:03Z' }),
      ai('a2', 'streaming', 'par', { createdAt: '2026-01-01T00:00:04Z' }),
    ],
    nextCursor: 'older',
  });
  assert.deepEqual(r, { added: 2, overlap: true });
  assert.deepEqual(l.items.map((m) => m.id), ['m1', 'a1', 'm2', 'm3', 'a2']);
  assert.equal(l.get('a1').content, 'Hello');
  assert.equal(l.get('a1').status, 'complete');
  assert.deepEqual(l.resumeRequests(), [{ sessionId: S, messageId: 'a2', afterSeq: 0 }]);
});

test('a newest page with nothing we know, and more behind it, reports no overlap', () => {
  const l = new MessageList(S);
  l.addOlderPage({ items: [user('m1', 'old')], nextCursor: null });
  const r = l.mergeNewest({ items: [user('m99', 'much later', { createdAt: '2026-02-01T00:00:00Z' })], nextCursor: 'more' });
  assert.equal(r.overlap, false);
  l.reset();
  assert.equal(l.length, 0);
  assert.equal(l.hasOlder, true);
});
