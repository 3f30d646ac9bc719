// Building DOM nodes without HTML strings: text always goes through
// textContent / text nodes, so nothing a user or the AI wrote is parsed as
// markup. (Markdown is the one exception and goes through markdown.js.)

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let uid = 0;
export function uniqueId(prefix = 'id') {
  return `${prefix}-${++uid}`;
}

/** A labelled form field with an inline error slot wired for screen readers. */
export function field({ label, name, type = 'text', value = '', autocomplete, hint, required = true, multiline = false, attrs = {} }) {
  const id = uniqueId(name);
  const errId = `${id}-err`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h(multiline ? 'textarea' : 'input', {
    id, name, ...(multiline ? {} : { type }), autocomplete, required,
    'aria-describedby': [hintId, errId].filter(Boolean).join(' '),
    ...attrs,
  });
  input.value = value;
  const error = h('p', { id: errId, class: 'field-error', 'aria-live': 'polite' });
  const wrap = h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('p', { id: hintId, class: 'field-hint', text: hint }) : null,
    error);
  return {
    wrap, input, error,
    setError(msg) {
      error.textContent = msg ?? '';
      if (msg) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}

/** Announce to screen readers without moving focus. */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after clearing makes repeated identical messages heard.
  setTimeout(() => { region.textContent = text; }, 30);
}

const dateFormats = new Map();
export function formatTime(iso, timeZone) {
  const key = timeZone || '';
  let f = dateFormats.get(key);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: timeZone || undefined });
    } catch {
      f = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    }
    dateFormats.set(key, f);
  }
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : f.format(d);
}
