import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../app/js/lib/sse.js';

test('events split across reads are reassembled', () => {
  const p = new SseParser();
  assert.deepEqual(p.feed('event: message_chunk\ndata: {"seq":'), []);
  assert.deepEqual(p.feed('1}\n\nevent: message_complete\r\ndata: {}\r'), [{ event: 'message_chunk', data: '{"seq":1}' }]);
  assert.deepEqual(p.feed('\n\r\n'), [{ event: 'message_complete', data: '{}' }]);
});

test('comments are skipped and multi-line data is joined', () => {
  const p = new SseParser();
  assert.deepEqual(p.feed(': keep-alive\n\ndata: a\ndata: b\n\n'), [{ event: 'message', data: 'a\nb' }]);
});
