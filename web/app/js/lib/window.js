// Which slice of a long history is in the DOM. The chat view renders at most
// `max` messages; scrolling near either edge slides the slice by `step`, and
// the caller keeps the message under the reader's eye in place (scroll
// anchoring). Pure arithmetic so it can be tested without a browser.

export const DEFAULTS = Object.freeze({ max: 120, step: 40, initial: 60 });

/** The slice to show when a session opens: its newest messages. */
export function initialWindow(length, { initial } = DEFAULTS) {
  return { start: Math.max(0, length - initial), end: length };
}

/** Slide towards older messages; trims the newest end to stay within `max`. */
export function slideUp(w, { max, step } = DEFAULTS) {
  if (w.start === 0) return w;
  const start = Math.max(0, w.start - step);
  return { start, end: Math.min(w.end, start + max) };
}

/** Slide towards newer messages; trims the oldest end to stay within `max`. */
export function slideDown(w, length, { max, step } = DEFAULTS) {
  if (w.end >= length) return { start: w.start, end: Math.min(w.end, length) };
  const end = Math.min(length, w.end + step);
  return { start: Math.max(w.start, end - max), end };
}

/** `added` messages were put in front of the list (an older page): shift indices. */
export function shiftForPrepend(w, added) {
  return { start: w.start + added, end: w.end + added };
}

/**
 * The list grew at its newest end (a live message). A window that showed
 * the newest message keeps doing so; when the reader is at the bottom the
 * oldest rendered messages are let go so the DOM stays bounded.
 */
export function followAppend(w, oldLength, newLength, atBottom, { max } = DEFAULTS) {
  if (w.end < oldLength) return w;
  const end = newLength;
  const start = atBottom ? Math.max(w.start, end - max) : w.start;
  return { start, end };
}

/** Jump to the newest messages (the "latest" button). */
export function jumpToLatest(length, opts = DEFAULTS) {
  return initialWindow(length, opts);
}
