// The contract's input rules (API.md "Input rules"), checked as the user
// types. They mirror the server's checks so a form the client accepts is one
// the server accepts; the server stays the authority (its 422 details are
// shown the same way). Lengths count Unicode scalar values, like the server.

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const CONTROL_EXCEPT_WS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/u;

export function charCount(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// A pragmatic subset of RFC 5322 that the server's check also accepts; the
// server additionally wants a dot in the domain (`a@b` is refused).
const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** @returns {string|null} an error message, or null when valid */
export function email(value) {
  const v = String(value ?? '').trim();
  if (!v) return 'Enter your email address.';
  if (charCount(v) > 254) return 'An email address has at most 254 characters.';
  if (!EMAIL.test(v) || v.startsWith('.') || v.includes('..')) return 'Enter a valid email address, like name@example.com.';
  return null;
}

/** Every password rule with whether it is met, for a live checklist. */
export function passwordRules(value) {
  const v = String(value ?? '');
  const n = charCount(v);
  return [
    { id: 'length', label: '8 to 128 characters', ok: n >= 8 && n <= 128 },
    { id: 'lower', label: 'a lowercase letter', ok: /\p{Lowercase}/u.test(v) },
    { id: 'upper', label: 'an uppercase letter', ok: /\p{Uppercase}/u.test(v) },
    { id: 'digit', label: 'a digit', ok: /[0-9]/.test(v) },
  ];
}

export function password(value) {
  const v = String(value ?? '');
  if (!v) return 'Enter a password.';
  const n = charCount(v);
  if (n < 8) return 'A password needs at least 8 characters.';
  if (n > 128) return 'A password has at most 128 characters.';
  const missing = passwordRules(v).filter((r) => !r.ok && r.id !== 'length').map((r) => r.label);
  if (missing.length) return `A password needs ${joinList(missing)}.`;
  return null;
}

/** A password typed to prove who you are (login, confirmations): only present and bounded. */
export function passwordAttempt(value) {
  const v = String(value ?? '');
  if (!v) return 'Enter your password.';
  if (charCount(v) > 128) return 'A password has at most 128 characters.';
  return null;
}

export function name(value, what = 'Name') {
  const v = String(value ?? '').trim();
  const n = charCount(v);
  if (n < 2) return `${what} needs at least 2 characters.`;
  if (n > 50) return `${what} has at most 50 characters.`;
  if (CONTROL.test(v)) return `${what} cannot contain control characters.`;
  return null;
}

export function bio(value) {
  const v = String(value ?? '');
  if (charCount(v) > 500) return `A bio has at most 500 characters (${charCount(v)} now).`;
  if (CONTROL_EXCEPT_WS.test(v)) return 'A bio cannot contain control characters.';
  return null;
}

/** `isZone` is injectable so Node tests and browsers without Intl zones work. */
export function timezone(value, isZone = defaultIsZone) {
  const v = String(value ?? '').trim();
  if (!v) return 'Choose a time zone.';
  if (!isZone(v)) return 'Use a time zone name like Europe/Paris or UTC.';
  return null;
}

function defaultIsZone(zone) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const MESSAGE_MAX = 10000;

export function messageContent(value) {
  const v = String(value ?? '');
  if (CONTROL_EXCEPT_WS.test(v)) return 'The message contains a control character that cannot be sent.';
  const n = charCount(v.trim());
  if (n === 0) return 'Type a message first.';
  if (n > MESSAGE_MAX) return `A message has at most ${MESSAGE_MAX.toLocaleString('en')} characters (${n.toLocaleString('en')} now).`;
  return null;
}

export function title(value) {
  const v = String(value ?? '').trim();
  const n = charCount(v);
  if (n < 1) return 'A title needs at least 1 character.';
  if (n > 200) return 'A title has at most 200 characters.';
  if (CONTROL.test(v)) return 'A title cannot contain control characters.';
  return null;
}

export function systemPrompt(value) {
  const v = String(value ?? '');
  if (charCount(v) > 8000) return 'A system prompt has at most 8,000 characters.';
  if (CONTROL_EXCEPT_WS.test(v)) return 'The system prompt contains a control character.';
  return null;
}

/** The same check for a whole form: `{field: message}` for failing fields only. */
export function check(rules, values) {
  const errors = {};
  for (const [field, rule] of Object.entries(rules)) {
    const err = rule(values[field]);
    if (err) errors[field] = err;
  }
  return errors;
}

/**
 * The server's 422 `details` as `{field: message}`. Unknown fields (e.g.
 * `body`) go under `_form` so nothing the server said is dropped.
 */
export function fieldErrors(details, knownFields) {
  const out = {};
  for (const d of details ?? []) {
    const key = d && knownFields.includes(d.field) ? d.field : '_form';
    const msg = d?.message ?? 'is invalid';
    out[key] = out[key] ? `${out[key]} ${msg}` : msg;
  }
  return out;
}

function joinList(items) {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}
