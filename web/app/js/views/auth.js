// Sign in and sign up. Every field is checked as the person types (after
// they first leave it, so nobody is scolded mid-word), the password rules
// tick off live, and the server's answer is shown next to the field it
// names (422 details) or above the form (anything else).

import { h, field, announce } from '../dom.js';
import * as rules from '../lib/validate.js';
import { ApiError } from '../api.js';
import { auth } from '../auth.js';

export function authView({ mode, navigate, notice }) {
  const signup = mode === 'signup';
  const fields = {};
  if (signup) fields.name = field({ label: 'Your name', name: 'name', autocomplete: 'name' });
  fields.email = field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', attrs: { inputmode: 'email', spellcheck: 'false' } });
  fields.password = field({
    label: 'Password', name: 'password', type: 'password',
    autocomplete: signup ? 'new-password' : 'current-password',
  });
  const check = {
    name: (v) => rules.name(v, 'Your name'),
    email: rules.email,
    password: signup ? rules.password : rules.passwordAttempt,
  };

  const checklist = signup ? h('ul', { class: 'pw-rules', 'aria-label': 'Password rules' }) : null;
  const renderChecklist = () => {
    if (!checklist) return;
    checklist.replaceChildren(...rules.passwordRules(fields.password.input.value).map((r) =>
      h('li', { class: r.ok ? 'ok' : '', text: `${r.ok ? '✓' : '○'} ${r.label}`, 'aria-label': `${r.label}: ${r.ok ? 'met' : 'not met'}` })));
  };
  if (checklist) {
    fields.password.input.setAttribute('aria-describedby', `${fields.password.input.getAttribute('aria-describedby')} ${checklist.id = 'pw-rules'}`);
    fields.password.wrap.insertBefore(checklist, fields.password.error);
    renderChecklist();
  }

  const touched = new Set();
  for (const [name, f] of Object.entries(fields)) {
    f.input.addEventListener('input', () => {
      if (name === 'password') renderChecklist();
      if (touched.has(name)) f.setError(check[name](f.input.value));
    });
    f.input.addEventListener('blur', () => {
      if (!f.input.value && !touched.has(name)) return;
      touched.add(name);
      f.setError(check[name](f.input.value));
    });
  }

  const formError = h('div', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary', text: signup ? 'Create account' : 'Sign in' });
  const form = h('form', { class: 'auth-form', novalidate: true, 'aria-labelledby': 'auth-title' },
    h('h1', { id: 'auth-title', text: signup ? 'Create your account' : 'Sign in to Spec Gen' }),
    notice ? h('p', { class: 'notice', role: 'status', text: notice }) : null,
    formError,
    Object.values(fields).map((f) => f.wrap),
    submit,
    h('p', { class: 'switch' },
      signup ? 'Already have an account? ' : 'New here? ',
      h('a', { href: signup ? '/signin' : '/signup', 'data-link': '', text: signup ? 'Sign in' : 'Create an account' })));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.textContent = '';
    const values = Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.input.value]));
    let first = null;
    for (const [name, f] of Object.entries(fields)) {
      touched.add(name);
      const err = check[name](values[name]);
      f.setError(err);
      if (err && !first) first = f.input;
    }
    if (first) {
      first.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = signup ? 'Creating account…' : 'Signing in…';
    try {
      const email = values.email.trim();
      if (signup) await auth.register({ email, password: values.password, name: values.name.trim() });
      else await auth.login({ email, password: values.password });
      announce('Signed in.');
    } catch (err) {
      submit.disabled = false;
      submit.textContent = signup ? 'Create account' : 'Sign in';
      showServerError(err, fields, formError);
    }
  });

  return h('main', { id: 'main', class: 'auth-page' }, h('div', { class: 'brand-lg', 'aria-hidden': 'true', text: 'Spec Gen' }), form);
}

/** A server error next to the fields it names, or above the form. */
export function showServerError(err, fields, formError) {
  if (!(err instanceof ApiError)) {
    formError.textContent = 'Something went wrong. Try again.';
    return;
  }
  if (err.code === 'VALIDATION_FAILED' && err.details.length) {
    const byField = rules.fieldErrors(err.details, Object.keys(fields));
    let first = null;
    for (const [name, msg] of Object.entries(byField)) {
      if (name === '_form') continue;
      fields[name].setError(msg);
      first ??= fields[name].input;
    }
    formError.textContent = byField._form ?? (first ? 'Please fix the fields marked below.' : err.plain);
    first?.focus();
    return;
  }
  formError.textContent = err.plain;
}
