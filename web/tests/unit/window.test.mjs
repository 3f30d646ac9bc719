import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as w from '../../app/js/lib/window.js';

const opts = { max: 120, step: 40, initial: 60 };

test('a session opens on its newest messages', () => {
  assert.deepEqual(w.initialWindow(5000, opts), { start: 4940, end: 5000 });
  assert.deepEqual(w.initialWindow(10, opts), { start: 0, end: 10 });
});

test('sliding up and down keeps at most `max` messages rendered', () => {
  let win = w.initialWindow(5000, opts);
  for (let i = 0; i < 200; i++) {
    win = w.slideUp(win, opts);
    assert.ok(win.end - win.start <= opts.max);
  }
  assert.deepEqual(win, { start: 0, end: 120 });
  assert.deepEqual(w.slideUp(win, opts), win, 'nothing older in memory');
  for (let i = 0; i < 200; i++) {
    win = w.slideDown(win, 5000, opts);
    assert.ok(win.end - win.start <= opts.max);
  }
  assert.deepEqual(win, { start: 4880, end: 5000 });
});

test('an older page shifts the window by what was prepended', () => {
  assert.deepEqual(w.shiftForPrepend({ start: 0, end: 60 }, 50), { start: 50, end: 110 });
});

test('live messages extend a window at the newest end; at the bottom the oldest are let go', () => {
  assert.deepEqual(w.followAppend({ start: 0, end: 120 }, 120, 121, true, opts), { start: 1, end: 121 });
  assert.deepEqual(w.followAppend({ start: 0, end: 120 }, 120, 121, false, opts), { start: 0, end: 121 });
  // A window scrolled back in history does not move.
  assert.deepEqual(w.followAppend({ start: 0, end: 100 }, 120, 121, false, opts), { start: 0, end: 100 });
});
