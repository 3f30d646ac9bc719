// Profile and account: display name, bio, time zone, theme; password
// change; sign out everywhere; delete the account.

import { h, field, announce } from '../dom.js';
import * as api from '../api.js';
import { auth } from '../auth.js';
import * as rules from '../lib/validate.js';
import { showServerError } from './auth.js';
import { applyTheme } from '../theme-switch.js';

export function profileView({ navigate }) {
  const me = auth.user;
  const p = me.profile ?? {};
  const prefs = p.preferences && typeof p.preferences === 'object' ? p.preferences : {};

  // ----- profile -----
  const f = {
    displayName: field({ label: 'Display name', name: 'displayName', value: p.displayName ?? me.name, autocomplete: 'nickname' }),
    bio: field({ label: 'Bio', name: 'bio', value: p.bio ?? '', multiline: true, required: false, hint: 'Up to 500 characters.' }),
    timezone: field({ label: 'Time zone', name: 'timezone', value: p.timezone || 'UTC', autocomplete: 'off', attrs: { list: 'tz-list', spellcheck: 'false' }, hint: 'Times in chats are shown in this zone.' }),
  };
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const tzList = h('datalist', { id: 'tz-list' }, ['UTC', ...zones].map((z) => h('option', { value: z })));
  const theme = prefs.theme === 'light' || prefs.theme === 'dark' ? prefs.theme : 'system';
  const themeGroup = h('fieldset', { class: 'theme-choice' },
    h('legend', { text: 'Theme' }),
    ['system', 'light', 'dark'].map((t) => h('label', {},
      h('input', { type: 'radio', name: 'theme', value: t, checked: t === theme }),
      ` ${t === 'system' ? 'Same as my device' : t === 'light' ? 'Light' : 'Dark'}`)));
  themeGroup.addEventListener('change', (e) => applyTheme(e.target.value));
  const check = { displayName: (v) => rules.name(v, 'Display name'), bio: rules.bio, timezone: (v) => rules.timezone(v) };
  for (const [k, x] of Object.entries(f)) x.input.addEventListener('input', () => x.setError(check[k](x.input.value)));
  const profileErr = h('div', { class: 'form-error', role: 'alert' });
  const profileOk = h('p', { class: 'ok-note', role: 'status' });
  const profileForm = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'profile-h' },
    h('h2', { id: 'profile-h', text: 'Profile' }),
    h('p', { class: 'hint', text: `Signed in as ${me.email}` }),
    profileErr, f.displayName.wrap, f.bio.wrap, f.timezone.wrap, tzList, themeGroup,
    h('button', { type: 'submit', class: 'primary', text: 'Save profile' }), profileOk);
  profileForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    profileErr.textContent = profileOk.textContent = '';
    const values = Object.fromEntries(Object.entries(f).map(([k, x]) => [k, x.input.value]));
    const errs = rules.check(check, values);
    for (const [k, x] of Object.entries(f)) x.setError(errs[k]);
    if (Object.keys(errs).length) return f[Object.keys(errs)[0]].input.focus();
    const chosen = profileForm.querySelector('input[name=theme]:checked')?.value ?? 'system';
    const preferences = { ...prefs };
    if (chosen === 'system') delete preferences.theme;
    else preferences.theme = chosen;
    try {
      const profile = await api.patch('users/me/profile', {
        displayName: values.displayName.trim(), bio: values.bio, timezone: values.timezone.trim(), preferences,
      });
      auth.user = { ...auth.user, profile };
      auth.dispatchEvent(new CustomEvent('user', { detail: auth.user }));
      applyTheme(chosen);
      profileOk.textContent = 'Profile saved.';
      announce('Profile saved.');
    } catch (err) {
      showServerError(err, f, profileErr);
    }
  });

  // ----- password -----
  const pw = {
    currentPassword: field({ label: 'Current password', name: 'currentPassword', type: 'password', autocomplete: 'current-password' }),
    newPassword: field({ label: 'New password', name: 'newPassword', type: 'password', autocomplete: 'new-password', hint: '8 to 128 characters with a lowercase letter, an uppercase letter and a digit.' }),
  };
  const pwCheck = { currentPassword: rules.passwordAttempt, newPassword: rules.password };
  for (const [k, x] of Object.entries(pw)) x.input.addEventListener('input', () => { if (x.input.getAttribute('aria-invalid')) x.setError(pwCheck[k](x.input.value)); });
  const pwErr = h('div', { class: 'form-error', role: 'alert' });
  const pwOk = h('p', { class: 'ok-note', role: 'status' });
  const pwForm = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'pw-h' },
    h('h2', { id: 'pw-h', text: 'Change password' }),
    h('p', { class: 'hint', text: 'Your other devices will be signed out; this one stays signed in.' }),
    pwErr, pw.currentPassword.wrap, pw.newPassword.wrap,
    h('button', { type: 'submit', class: 'primary', text: 'Change password' }), pwOk);
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    pwErr.textContent = pwOk.textContent = '';
    const values = { currentPassword: pw.currentPassword.input.value, newPassword: pw.newPassword.input.value };
    const errs = rules.check(pwCheck, values);
    for (const [k, x] of Object.entries(pw)) x.setError(errs[k]);
    if (Object.keys(errs).length) return pw[Object.keys(errs)[0]].input.focus();
    try {
      await api.put('users/me/password', values);
      pw.currentPassword.input.value = pw.newPassword.input.value = '';
      pwOk.textContent = 'Password changed. Other devices were signed out.';
      announce('Password changed.');
    } catch (err) {
      if (err.code === 'INVALID_CREDENTIALS') {
        pw.currentPassword.setError('That is not your current password.');
        pw.currentPassword.input.focus();
      } else {
        showServerError(err, pw, pwErr);
      }
    }
  });

  // ----- sessions and account -----
  const accErr = h('div', { class: 'form-error', role: 'alert' });
  const signOutAll = h('button', {
    type: 'button', text: 'Sign out everywhere',
    onclick: async () => {
      signOutAll.disabled = true;
      try {
        await auth.logoutAll();
      } catch (err) {
        signOutAll.disabled = false;
        accErr.textContent = err.plain ?? String(err);
      }
    },
  });
  const delPw = field({ label: 'Password, to confirm', name: 'deletePassword', type: 'password', autocomplete: 'current-password' });
  const delErr = h('div', { class: 'form-error', role: 'alert' });
  const delForm = h('form', { class: 'card danger-zone', novalidate: true, 'aria-labelledby': 'del-h' },
    h('h2', { id: 'del-h', text: 'Delete account' }),
    h('p', { text: 'Deletes your account and the chats you own, and removes you from chats you joined. This cannot be undone.' }),
    delErr, delPw.wrap,
    h('button', { type: 'submit', class: 'danger', text: 'Delete my account' }));
  delForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    delErr.textContent = '';
    const msg = rules.passwordAttempt(delPw.input.value);
    delPw.setError(msg);
    if (msg) return delPw.input.focus();
    try {
      await api.del('users/me', { password: delPw.input.value });
      auth.forget('Your account was deleted.');
    } catch (err) {
      if (err.code === 'INVALID_CREDENTIALS') {
        delPw.setError('That is not your password.');
        delPw.input.focus();
      } else {
        showServerError(err, { password: delPw }, delErr);
      }
    }
  });

  return h('main', { id: 'main', class: 'profile', tabindex: '-1' },
    h('div', { class: 'profile-head' },
      h('a', { href: '/', 'data-link': '', class: 'back', text: '‹ Chats' }),
      h('h1', { text: 'Your profile' })),
    h('div', { class: 'profile-grid' },
      profileForm,
      pwForm,
      h('section', { class: 'card', 'aria-labelledby': 'out-h' },
        h('h2', { id: 'out-h', text: 'Sign out' }),
        h('p', { class: 'hint', text: 'Sign out everywhere ends every sign-in of this account, on every device, this one included.' }),
        accErr,
        h('div', { class: 'panel-buttons' },
          h('button', { type: 'button', text: 'Sign out', onclick: () => auth.logout().catch(() => {}) }),
          signOutAll)),
      delForm));
}
